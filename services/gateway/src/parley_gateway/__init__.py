"""Parley gateway: the public edge (client HTTP endpoints and the WebSocket session)."""
