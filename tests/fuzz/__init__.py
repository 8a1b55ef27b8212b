"""Seed models and mutations of the fuzz harness (driven by tools/fuzz.py)."""
