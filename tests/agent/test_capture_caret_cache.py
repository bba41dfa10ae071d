"""The cache around CPython's caret placement (``plain_text.cache_caret_anchors``).

The agent wraps ``traceback._extract_caret_anchors_from_line_segment`` in a bounded cache
(each traceback frame's failing line is otherwise parsed with ``ast`` every time). The
formatted text must not change: the cached and the original function agree, and whole
tracebacks format the same with and without the cache.
"""

from __future__ import annotations

import sys
import traceback
from typing import Any

import pytest

from debugbroker.agent.capture import plain_text

NAME = "_extract_caret_anchors_from_line_segment"
pytestmark = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="Python 3.10 places no ~~~^^^ markers (no caret anchors)"
)


def _fail(kind: str) -> BaseException:
    table: dict[str, Any] = {"a": [1, 2]}
    try:
        if kind == "binop":
            _ = table["a"][0] + table["a"][1] / 0
        elif kind == "subscript":
            _ = table["a"][1]["b"]
        else:
            _ = len(table["a"]) + table["missing"]
    except Exception as error:  # noqa: BLE001 - the errors under test
        return error
    raise AssertionError("did not fail")


def test_the_cache_is_installed_once_and_gives_the_original_answers() -> None:
    cached = getattr(traceback, NAME)
    assert hasattr(cached, "cache_info")
    plain_text.cache_caret_anchors()  # a second call does not wrap it again
    assert getattr(traceback, NAME) is cached
    original = cached.__wrapped__
    for segment in ("a + b / c", "x[1]['b']", "f(x)(y)", "not python (", "a.b + c[d]", ""):
        assert cached(segment) == original(segment)
        assert cached(segment) == original(segment)  # from the cache this time


def test_tracebacks_format_the_same_with_and_without_the_cache() -> None:
    cached = getattr(traceback, NAME)
    for kind in ("binop", "subscript", "key"):
        error = _fail(kind)
        with_cache = "".join(traceback.format_exception(error))
        setattr(traceback, NAME, cached.__wrapped__)
        try:
            without = "".join(traceback.format_exception(error))
        finally:
            setattr(traceback, NAME, cached)
        assert with_cache == without
        assert "^" in without or "~" in without  # the markers are really placed
