"""The console's language rules, with plain function calls: incomplete input, echo, completion."""

from __future__ import annotations

import pytest

from debugbroker.agent.evals.language import (
    HIDDEN_PREFIX,
    compile_input,
    complete,
    completion_token,
    needs_more_lines,
)

INCOMPLETE_EVERYWHERE = [
    "for i in range(3):",
    "def f(x):",
    "@decorator",
    "@decorator\ndef f():",
    "with open('x') as f:",
    "class C(",
    "x = [1,\n 2,",
    "'''doc",
    "try:\n    1\nexcept ValueError:",
    "async with lock:",
    "if a:\n    1\nelif b:",
]
OPEN_BLOCKS = [  # complete as a script, but the interpreter waits for an empty line
    "for i in range(3):\n    print(i)",
    "def f():\n    return 1",
    "@decorator\ndef f():\n    pass",
    "with lock:\n    pass",
    "x = 1\nwhile x:\n    x -= 1",
    "def f(): return 1",
    "match x:\n    case 1:\n        pass",
]
COMPLETE = [
    "x = 1",
    "1 +\\\n2",
    "x = [1,\n 2]",
    "print('a')\nprint('b')",
    "await thing()",
    "",
    "# c",
]


@pytest.mark.parametrize("source", INCOMPLETE_EVERYWHERE)
def test_unfinished_input_needs_more_lines(source: str) -> None:
    assert needs_more_lines(source, interactive=False)
    assert needs_more_lines(source, interactive=True)
    assert compile_input(source, "<t>", "echo") is None


@pytest.mark.parametrize("source", OPEN_BLOCKS)
def test_an_open_block_waits_for_an_empty_line_in_the_repl_only(source: str) -> None:
    assert needs_more_lines(source, interactive=True)
    assert not needs_more_lines(source, interactive=False)
    assert not needs_more_lines(source + "\n", interactive=True)
    assert compile_input(source, "<t>", "echo", interactive=True) is None  # as the broker's check
    assert compile_input(source + "\n", "<t>", "echo", interactive=True) is not None


@pytest.mark.parametrize("source", COMPLETE)
def test_complete_input(source: str) -> None:
    assert not needs_more_lines(source, interactive=True)
    assert compile_input(source, "<t>", "echo", interactive=True) is not None


def test_syntax_errors_are_raised_not_incomplete() -> None:
    assert not needs_more_lines("1 +", interactive=True)
    with pytest.raises(SyntaxError):
        compile_input("1 +", "<t>", "echo")
    with pytest.raises(SyntaxError):
        compile_input("return 5", "<t>", "echo")


def run(source: str) -> list[object]:
    echoed: list[object] = []
    compiled = compile_input(source, "<t>", "echo")
    assert compiled is not None and not compiled.is_async
    value = eval(compiled.code, {"echo": echoed.append})
    if compiled.echo_value:  # one expression: the caller echoes its value
        echoed.append(value)
    return echoed


def test_echo_follows_single_mode() -> None:
    assert run("1\nx = 2\nx\nNone") == [1, 2, None]  # the caller skips None, as displayhook
    assert run("for i in range(3):\n    i * 10") == [0, 10, 20]
    assert run("if True:\n    'a'\nelse:\n    'b'") == ["a"]
    assert run("def f():\n    5\n    return 6\nf()") == [6]  # not inside functions
    class_and_lambda = run("class C:\n    7\nlambda: 8")  # not in class bodies either
    assert len(class_and_lambda) == 1 and callable(class_and_lambda[0])
    assert run("x = [i for i in range(2)]\nx") == [[0, 1]]
    blocks = (
        "try:\n    1\n    1 / 0\nexcept ZeroDivisionError:\n    2\nelse:\n    3\nfinally:\n    4"
    )
    assert run(blocks) == [1, 2, 4]
    assert run("while True:\n    5\n    break\nelse:\n    6") == [5]
    assert run("with __import__('contextlib').nullcontext():\n    7") == [7]
    assert run("match 2:\n    case 1:\n        8\n    case _:\n        9") == [9]


def test_one_expression_is_compiled_without_a_tree_and_echoed_by_the_caller() -> None:
    for source in ("1 + 2", "f(a=1) == 2", "x <= 1", "d[k]", "lambda x=1: x", "(\n 1,\n 2)"):
        compiled = compile_input(source, "<t>", "echo")
        assert compiled is not None and compiled.echo_value, source
    for source in ("x = 1", "d[k] = 1", "a, b = 1, 2", "x += 1", "import os", "1; 2", "await f()"):
        compiled = compile_input(source, "<t>", "echo")
        assert compiled is not None and not compiled.echo_value, source
    assert run("1 + 2") == [3] and run("print") == [print]
    with pytest.raises(IndentationError):  # an indented first line, as in the interpreter
        compile_input(" 1", "<t>", "echo")
    assert compile_input("(1,", "<t>", "echo") is None


def test_top_level_await_compiles_to_a_coroutine() -> None:
    compiled = compile_input("import asyncio\nawait asyncio.sleep(0)", "<t>", "echo")
    assert compiled is not None and compiled.is_async


def test_completion() -> None:
    namespace: dict[str, object] = {"total": 1, "totem": "x", f"{HIDDEN_PREFIX}echo_1": print}
    assert completion_token("print(tot") == "tot"
    assert completion_token("a.b.c") == "a.b.c" and completion_token("x + ") == ""
    assert complete(namespace, "print(tot") == ("total", "totem")
    (upper,) = complete(namespace, "totem.up")
    assert upper.startswith("totem.upper(")  # "()" on 3.11+: it takes no arguments
    assert complete(namespace, "__debugbroker") == ()
    assert complete(namespace, "") == () and complete(namespace, "3.") == ()
    assert complete(namespace, "missing.attr") == ()
    assert "while" in [m.strip() for m in complete(namespace, "whi")]  # keywords too
