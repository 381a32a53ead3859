"""Nearby search: an in-memory spatial index of the charger registry, kept current with live status."""
