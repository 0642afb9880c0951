"""Verification: judging runs and Prometheus queries."""
