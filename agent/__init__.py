"""The in-app side of debugbroker (placeholder until the middleware lands)."""
