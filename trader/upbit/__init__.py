"""Upbit exchange adapter: auth, REST, WebSocket, trading rules."""
