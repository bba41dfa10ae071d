"""The agent's link to the broker: the per-process ``Transport`` and its I/O thread."""
