"""Strategy engine: declared rules composed into one pure on_tick engine."""
