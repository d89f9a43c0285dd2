"""Market data: loading recorded candles/ticks and turning them into trade events."""
