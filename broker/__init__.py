"""The debugbroker broker process: zmq server, store, HTTP API, WebSocket and dashboard."""
