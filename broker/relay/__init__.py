"""The broker's zmq side: admitting agents, taking their reports, routing requests to them."""
