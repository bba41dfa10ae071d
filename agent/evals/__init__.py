"""Evals: held frames, the console's language, running input in a frame, and lookups."""
