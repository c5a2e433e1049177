"""score family (being written)."""
