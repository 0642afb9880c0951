"""Incidents: alerts folded by fingerprint, claimed, resolved."""
