"""Package e2e."""
