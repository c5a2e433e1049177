"""gans family (being written)."""
