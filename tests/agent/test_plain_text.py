"""The plain-text traceback (``agent/plain_text.py``): exactly ``format_exception``'s text,
also when its stack part comes from the per-stack cache."""

from __future__ import annotations

import importlib.util
import os
import sys
import traceback
from pathlib import Path
from types import ModuleType

import pytest

from debugbroker.agent.capture import plain_text
from debugbroker.agent.capture.plain_text import format_text


def reference(error: BaseException) -> str:
    return "".join(traceback.format_exception(type(error), error, error.__traceback__))


def caught(function: object, *args: object) -> BaseException:
    try:
        function(*args)  # type: ignore[operator]
    except Exception as error:  # noqa: BLE001 - the errors under test
        return error
    raise AssertionError("did not fail")


def load(path: Path, source: str, mtime: int) -> ModuleType:
    path.write_text(source)
    os.utime(path, (mtime, mtime))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def divide(total: int, count: int) -> float:
    return total / count + len(str(total))


class Worded(Exception):
    word = "first"

    def __str__(self) -> str:
        return Worded.word


def raise_worded() -> None:
    raise Worded()


def test_repeats_come_from_the_cache_and_read_the_same() -> None:
    first = caught(divide, 1, 0)
    assert format_text(first, alone=True) == reference(first)
    for _ in range(3):  # the same stack again: only the exception's own lines are formatted
        again = caught(divide, 2, 0)
        assert format_text(again, alone=True) == reference(again)
    assert plain_text.is_stack_cached(again.__traceback__)


def test_the_message_is_formatted_every_time() -> None:
    for word in ("first", "second", "third"):  # the same stack: from the cache after the first
        Worded.word = word
        error = caught(raise_worded)
        text = format_text(error, alone=True)
        assert text == reference(error) and text.endswith(f"Worded: {word}\n")
    assert plain_text.is_stack_cached(error.__traceback__)


def test_an_edited_source_file_shows_its_new_lines_as_cpython_does(tmp_path: Path) -> None:
    path = tmp_path / "edited_module.py"
    module = load(path, "def fail():\n    return 1 / 0  # before\n", 1_000_000)
    before = caught(module.fail)
    assert format_text(before, alone=True) == reference(before)
    assert "# before" in format_text(caught(module.fail), alone=True)
    # The file changes on disk while the old code runs on: CPython's traceback reads the new
    # line (linecache.checkcache), and so must the cached stack.
    path.write_text("def fail():\n    return 1 / 0  # after!\n")
    os.utime(path, (2_000_000, 2_000_000))
    after = caught(module.fail)
    text = format_text(after, alone=True)
    assert "# after!" in text and text == reference(after)


def test_traceback_limit_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    def outer() -> None:
        divide(1, 0)

    full = format_text(caught(outer), alone=True)
    monkeypatch.setattr(sys, "tracebacklimit", 1, raising=False)
    error = caught(outer)
    limited = format_text(error, alone=True)
    assert limited == reference(error) and limited != full


def test_chained_errors_are_formatted_whole() -> None:
    def chained() -> None:
        try:
            divide(1, 0)
        except ZeroDivisionError as error:
            raise ValueError("wrapped") from error

    for _ in range(2):
        error = caught(chained)
        text = format_text(error)
        assert text == reference(error)
        assert "The above exception was the direct cause" in text


PLUGIN = 'def handler():\n    raise ValueError("boom")\n'


def test_identical_functions_in_two_files_name_their_own_file(tmp_path: Path) -> None:
    """Code objects compare equal whatever their file: the cache must not mix them up."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = load(tmp_path / "a" / "plugin.py", PLUGIN, 1_000_000)
    second = load(tmp_path / "b" / "plugin.py", PLUGIN, 1_000_000)
    assert first.handler.__code__ == second.handler.__code__  # the trap

    def call(module: ModuleType) -> None:  # one call site for both
        module.handler()

    for module, folder in ((first, "a"), (second, "b"), (first, "a"), (second, "b")):
        error = caught(call, module)
        text = format_text(error, alone=True)
        assert text == reference(error)
        assert f"{os.sep}{folder}{os.sep}plugin.py" in text


def test_a_copy_differing_only_in_a_comment_shows_its_own_lines(tmp_path: Path) -> None:
    """Same code (a comment is not compiled), two files: each text shows its own comment."""
    (tmp_path / "c").mkdir()
    (tmp_path / "d").mkdir()
    one = load(tmp_path / "c" / "plugin.py", PLUGIN.replace("\n", "  # one\n", 2), 1_000_000)
    two = load(tmp_path / "d" / "plugin.py", PLUGIN.replace("\n", "  # two\n", 2), 1_000_000)
    assert one.handler.__code__ == two.handler.__code__
    for module, comment in ((one, "# one"), (two, "# two"), (one, "# one")):
        error = caught(module.handler)
        text = format_text(error, alone=True)
        assert text == reference(error) and comment in text
