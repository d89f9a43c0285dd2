"""Upbit exchange simulator: same REST/WebSocket protocol, matching against replayed data."""
