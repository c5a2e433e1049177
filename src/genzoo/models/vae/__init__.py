"""vae family (being written)."""
