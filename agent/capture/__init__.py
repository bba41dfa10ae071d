"""Capture: a raised exception becomes a ``Report`` (chain, frames, source, request panel, text)."""
