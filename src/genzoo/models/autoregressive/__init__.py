"""autoregressive family (being written)."""
