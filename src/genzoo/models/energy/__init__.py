"""energy family (being written)."""
