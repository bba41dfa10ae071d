"""The broker's SQLite store, reached only through ``Store``, off the event loop."""
