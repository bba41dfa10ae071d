"""What readers with the view token get of console transcripts: secrets masked in the text.

Reports are masked by the agent when they are captured. Console output is whatever the code
printed, so for readers who may not run code the broker masks every string of a transcript
entry (code, output, result, error) with the agent's secret-name rules: ``name=value`` and
``'name': 'value'`` pairs whose name looks like a credential, and URL credentials
(``scheme://user:PASSWORD@``). ``mask_for_viewer`` is the one call: when the agent's
text masking grows, it is the one place to use it.
"""

from __future__ import annotations

import re
from typing import Any

from debugbroker.agent.reprs.secret_names import looks_secret

__all__ = ["mask_for_viewer", "mask_text", "MASK"]

MASK = "********************"
_URL_CREDENTIALS = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*:)[^\s/@]+@")
_PAIR = re.compile(
    r"""(?P<q1>['"]?)(?P<name>[A-Za-z_][\w.-]*)(?P=q1)(?P<sep>\s*[:=]\s*)"""
    r"""(?P<prefix>b?)(?P<q2>['"]?)(?P<value>[^\s'",;&)}\]]+)"""
)


def _masked_pair(match: re.Match[str]) -> str:
    if not looks_secret(match["name"]):
        return match[0]
    return match[0][: match.start("value") - match.start()] + MASK


def mask_text(text: str) -> str:
    """``text`` with secret-named values and URL credentials masked."""
    text = _URL_CREDENTIALS.sub(lambda match: f"{match['head']}{MASK}@", text)
    return _PAIR.sub(_masked_pair, text)


def mask_for_viewer(value: Any) -> Any:
    """A copy of a transcript entry (or any JSON value) with every string masked."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {key: mask_for_viewer(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_for_viewer(item) for item in value]
    return value
