"""Diagnosis: which remedy fits an incident, or why none does."""
