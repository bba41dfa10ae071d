"""What readers with the view token get of console transcripts: secrets masked in the text.

Reports, and what the agent sends back from evals, are masked in the app before they leave
it. Readers who may not run code get every string of a transcript entry (code, output,
result, error) through the agent's value masking once more (``agent/reprs/secret_values``:
secret-named ``name=value`` and ``'name': value`` pairs, URL credentials), whatever the agent
that ran it did. ``mask_for_viewer`` is the one call.
"""

from __future__ import annotations

from typing import Any

from debugbroker.agent.reprs.secret_names import secret_pattern
from debugbroker.agent.reprs.secret_values import mask_text

__all__ = ["mask_for_viewer"]


def mask_for_viewer(value: Any) -> Any:
    """A copy of a transcript entry (or any JSON value) with every string masked."""
    if isinstance(value, str):
        return mask_text(value, secret_pattern())
    if isinstance(value, dict):
        return {key: mask_for_viewer(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_for_viewer(item) for item in value]
    return value
