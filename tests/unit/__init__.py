"""Package unit."""
