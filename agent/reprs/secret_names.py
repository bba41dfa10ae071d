"""Which names look like credentials: ``Options.secret_names`` compiled once, answers remembered.

A variable, dict key, header or environ key whose name matches has its value masked
(as Django does), in the locals, the Request panel and the "+" expansions alike. A name is
searched with its camelCase humps split by ``_`` (``apiKey`` as ``api_Key``), so the word-part
patterns of ``DEFAULT_SECRET_NAMES`` see ``cardNumber`` as ``card`` + ``Number``.
"""

from __future__ import annotations

import re
from functools import lru_cache

from debugbroker.agent.options import DEFAULT_SECRET_NAMES, Options

__all__ = ["SecretNames", "looks_secret", "secret_pattern"]

_HUMP = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


class SecretNames:
    """``Options.secret_names`` compiled, with the answer per name remembered.

    The same names come back in every report (a frame's locals, the environ's keys, the
    headers), and a remembered answer is a dict lookup instead of a search of the
    alternation. ``search`` answers like ``re.Pattern.search``: None for no match.
    """

    __slots__ = ("pattern", "_seen")

    REMEMBERED = 4096  # names remembered per pattern; past that, searched every time

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern
        self._seen: dict[str, bool] = {}

    def search(self, name: str) -> bool | None:
        """True when ``name`` looks like a credential, else None."""
        found = self._seen.get(name)
        if found is None:
            found = self.pattern.search(_HUMP.sub("_", name)) is not None
            if len(self._seen) < self.REMEMBERED and type(name) is str:
                self._seen[name] = found
        return True if found else None


@lru_cache(maxsize=16)
def _compiled(patterns: tuple[str, ...]) -> SecretNames:
    try:
        pattern = re.compile("|".join(f"(?:{p})" for p in patterns) or "(?!)", re.IGNORECASE)
    except re.error:  # a bad pattern must not disable masking: mask by the defaults
        return _compiled(DEFAULT_SECRET_NAMES)
    return SecretNames(pattern)


def secret_pattern(options: Options | None = None) -> SecretNames:
    """The compiled ``Options.secret_names``: names matching it have their values masked."""
    return _compiled(options.secret_names if options is not None else DEFAULT_SECRET_NAMES)


def looks_secret(name: str, options: Options | None = None) -> bool:
    """Whether a variable or key name suggests a credential (masked like Django does)."""
    return secret_pattern(options).search(name) is not None
