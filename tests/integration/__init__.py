"""Package integration."""
