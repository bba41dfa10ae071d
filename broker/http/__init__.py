"""The broker's HTTP side: the JSON API, auth, the WebSocket, OpenAPI and the dashboard files."""
