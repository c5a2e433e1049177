"""Normalizing flows (being written)."""
