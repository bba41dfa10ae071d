"""Reports from where no middleware sees the error: the capture API, logging, task queues, tests."""
