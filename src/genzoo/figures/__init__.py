"""Family-specific figures: what each family is best understood by looking at."""
