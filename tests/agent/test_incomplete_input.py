"""What the console reads off its input before it runs: ``needs_more_lines`` parses once and
answers as codeop does (the broker asks it of every input the dashboard sends), checked
against the rule it replaced on every input of CPython's own ``test_codeop.py`` and on
generated console input; and ``completion_token``, the dotted name a Tab replaces, found in
linear time."""

from __future__ import annotations

import ast
import codeop
import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from debugbroker.agent.evals.language import completion_token, needs_more_lines

# Every string CPython's Lib/test/test_codeop.py (3.11) hands to compile_command, valid,
# incomplete or invalid.
CODEOP_SOURCES: list[str] = json.loads(
    (Path(__file__).parent / "codeop_sources.json").read_text(encoding="utf-8")
)
# Statements that hold a block (``match`` since 3.10, ``try``/``except*`` since 3.11).
_COMPOUND = tuple(
    getattr(ast, name)
    for name in (
        "If", "For", "AsyncFor", "While", "With", "AsyncWith", "Try", "TryStar", "Match",
        "FunctionDef", "AsyncFunctionDef", "ClassDef",
    )
    if hasattr(ast, name)
)  # fmt: skip


def reference(source: str, *, interactive: bool) -> bool:
    """The rule as it was: codeop first (two compiles), then the interactive rule's parse."""
    compiler = codeop.CommandCompiler()
    compiler.compiler.flags |= ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    try:
        if compiler(source, "<console>", "exec") is None:
            return True
    except (SyntaxError, ValueError, OverflowError):
        pass
    if not interactive or source.endswith("\n"):
        return False
    try:
        tree = ast.parse(source, "<console>", "exec")
    except (SyntaxError, ValueError, OverflowError):
        return False
    return bool(tree.body) and isinstance(tree.body[-1], _COMPOUND)


def test_the_codeop_corpus_is_there() -> None:
    assert len(CODEOP_SOURCES) > 150


@pytest.mark.parametrize("interactive", [False, True])
def test_answers_as_codeop_on_cpythons_own_cases(interactive: bool) -> None:
    differ = [
        source
        for base in CODEOP_SOURCES
        for source in (base, base + "\n", base.rstrip("\n"))
        if needs_more_lines(source, interactive=interactive)
        != reference(source, interactive=interactive)
    ]
    assert differ == []


_PIECES = st.sampled_from(
    [
        "x", "1", " ", "    ", "\n", "\n    ", "(", ")", "[", "]", "{", "}", ":", ",", "+",
        "=", "'", '"', "'''", "\\", "#", "for x in y", "if a", "else", "elif b", "def f()",
        "class C", "with a", "async ", "await ", "try", "except", "finally", "lambda",
        "return", "yield", "@d", "match x", "case 1", "pass", "\t", "\0",
    ]
)  # fmt: skip


@given(st.lists(_PIECES, max_size=12).map("".join), st.booleans())
def test_answers_as_codeop_on_generated_input(source: str, interactive: bool) -> None:
    assert needs_more_lines(source, interactive=interactive) == reference(
        source, interactive=interactive
    )


# The rule, searched forwards; ``\Z``, not the old ``$``, which also matched before a final
# newline: Tab on a fresh line took the last word of the line above, and replacing it
# removed the newline instead.
_OLD_TOKEN = re.compile(r"[A-Za-z_0-9.\u0080-\U0010ffff]*\Z")


@given(st.text(alphabet=st.sampled_from("ab_9. (+!é\n\t"), max_size=60))
def test_the_completion_token_is_the_dotted_name_at_the_end(text: str) -> None:
    found = _OLD_TOKEN.search(text)
    assert completion_token(text) == (found.group(0) if found else "")


def test_the_completion_token_of_a_long_line_ending_in_a_space() -> None:
    # Searched forwards, the old pattern backtracked from every start: half a second for
    # 10,000 characters, on the agent's I/O thread, twice per Tab.
    assert completion_token("a" * 9_999 + " ") == ""
    assert completion_token("x " + "a." * 4_999) == "a." * 4_999
    assert completion_token("print(value)\n") == ""
