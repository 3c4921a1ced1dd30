"""parley-loadtest."""
