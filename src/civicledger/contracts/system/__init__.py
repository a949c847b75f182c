"""Built-in system contracts, available on every network from genesis."""
