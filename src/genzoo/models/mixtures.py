"""Gaussian mixtures (being written)."""
