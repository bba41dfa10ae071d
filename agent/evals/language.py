"""The console's language rules, without I/O: compiling input, echo, completion, helpers.

``compile_input`` answers the question the interactive interpreter asks after every line:
is this input complete, and if so, what code runs it? It uses ``codeop`` (the same
incomplete-input detection as ``code.InteractiveConsole``), but compiles in "exec" mode so
a pasted block of several statements runs at once, and with
``ast.PyCF_ALLOW_TOP_LEVEL_AWAIT`` so ``await`` works at the top level. Every expression
statement of the input that is not inside a function or class body is rewritten to call an
echo function, which is the rule of the interpreter's "single" mode (``for i in x: i``
echoes each ``i``), without touching the process-wide ``sys.displayhook``. Input that is
one expression (what a console mostly gets) is compiled from its text in "eval" mode instead,
with no tree made in Python, and the caller echoes the value it gives.

``complete`` offers names and attributes with ``rlcompleter`` on the eval namespace;
``make_helpers`` builds the ``dump()`` and ``help()`` the namespace offers.
"""

from __future__ import annotations

import ast
import codeop
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import CodeType

from debugbroker.agent.options import Options
from debugbroker.agent.reprs.tree import Budget, represent, variables_of
from debugbroker.protocol import format_node

__all__ = [
    "CompiledInput",
    "HIDDEN_PREFIX",
    "compile_input",
    "needs_more_lines",
    "complete",
    "make_helpers",
    "completion_token",
]

HIDDEN_PREFIX = "__debugbroker_"  # names the console puts in a namespace for itself
MAX_COMPLETIONS = 200
_REPR_SECONDS = 0.5
_COMPOUND: tuple[type[ast.stmt], ...] = (
    ast.If,
    ast.For,
    ast.AsyncFor,
    ast.While,
    ast.With,
    ast.AsyncWith,
    ast.Try,
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.Match,
)
if hasattr(ast, "TryStar"):  # 3.11+
    _COMPOUND = (*_COMPOUND, ast.TryStar)
_BLANK = ("", " ", "\t", "\f")  # an indented first line is an error, as in the interpreter
# The characters of a dotted name, matched from the end of the text (reversed): ``"...*$"``
# searched forwards backtracks from every start, quadratic in a long line ending in a space.
_TOKEN_CHARS = re.compile(r"[A-Za-z_0-9.\u0080-\U0010ffff]*")


# Input that cannot be one expression, told apart without compiling: it starts with a
# statement's keyword, or assigns to a name, attribute or item. Only a shortcut (what it
# misses costs a failed "eval" compile first; what it wrongly takes, the tree's way).
_STATEMENT_STARTS = (
    *(f"{word} " for word in ("import", "from", "def", "class", "if", "for", "while", "with")),
    *(f"{word} " for word in ("del", "raise", "assert", "global", "nonlocal", "async")),
    *("try", "pass", "return", "break", "continue", "@"),
)
_ASSIGNMENT = re.compile(
    r"[A-Za-z_][\w.]*(?:\[[^\]]*\])?\s*(?:,\s*[A-Za-z_][\w.]*\s*)*"
    r"(?:[-+*/%@&|^]|//|\*\*|>>|<<)?=(?!=)"
)


def _is_statement(source: str) -> bool:
    return source.startswith(_STATEMENT_STARTS) or (
        "=" in source and _ASSIGNMENT.match(source) is not None
    )


@dataclass(frozen=True, slots=True)
class CompiledInput:
    """Complete input, compiled: ``is_async`` when it awaits at the top level;
    ``echo_value`` when ``code`` is one expression whose value the caller echoes (else the
    code calls the echo function itself)."""

    code: CodeType
    is_async: bool
    echo_value: bool = False


# The fields of statements that hold statements: where an echoed expression can be. An
# expression holds no statements (a lambda's body is an expression), so the walk stops there.
_BODIES = ("body", "orelse", "finalbody", "handlers", "cases")
_SCOPES: tuple[type[ast.stmt], ...] = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _echo_expressions(statements: list[ast.stmt], echo_name: str) -> None:
    """Wrap the expression statements in ``statements`` and the blocks below them (not in a
    def or class: the interpreter does not echo inside those either) in an echo call."""
    for statement in statements:
        if type(statement) is ast.Expr:
            value = statement.value
            # The statement's position, as ast.copy_location gave it, without its walk.
            line, column = statement.lineno, statement.col_offset
            end_line, end_column = statement.end_lineno, statement.end_col_offset
            name = ast.Name(echo_name, ast.Load())
            call = ast.Call(func=name, args=[value], keywords=[])
            for node in (name, call):
                node.lineno, node.col_offset = line, column
                node.end_lineno, node.end_col_offset = end_line, end_column
            statement.value = call
        elif not isinstance(statement, _SCOPES):
            _echo_in_blocks(statement, echo_name)


def _echo_in_blocks(node: ast.AST, echo_name: str) -> None:
    for field in _BODIES:
        block = getattr(node, field, None)
        if not block:
            continue
        for item in block:  # an except handler or a match case holds its own body
            if isinstance(item, (ast.ExceptHandler, ast.match_case)):
                _echo_expressions(item.body, echo_name)
        if isinstance(block[0], ast.stmt):
            _echo_expressions(block, echo_name)


def _is_incomplete(source: str, filename: str) -> bool:
    compiler = codeop.CommandCompiler()  # fresh: it would remember __future__ imports
    compiler.compiler.flags |= ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    try:
        return compiler(source, filename, "exec") is None
    except (SyntaxError, ValueError, OverflowError, RecursionError, MemoryError):
        return False  # the real compile reports it


def needs_more_lines(source: str, filename: str = "<console>", *, interactive: bool) -> bool:
    """Whether ``source`` is unfinished console input (the interpreter would print ``...``).

    ``interactive`` adds the interpreter's rule that a compound statement (``for``, ``def``,
    ``with``, ``if``…) ends only with an empty line, so a block can keep growing line by
    line; without it only truly unfinished input (an open bracket, a ``:`` with no block)
    counts. Input that does not parse is complete: compiling it reports the error.

    The broker asks this of every input the dashboard sends, before the audit row: input
    that parses (nearly all of it) costs one parse, not codeop's two compiles and a parse.
    """
    try:  # one parse: input that parses is never unfinished for codeop (see compile_input)
        tree = ast.parse(source, filename, "exec")
    except (SyntaxError, ValueError, OverflowError):
        return _is_incomplete(source, filename)
    except (RecursionError, MemoryError):  # too deep for the parser ("-" * 90_000 + "1"):
        return False  # complete; compiling it says why it cannot run
    if not interactive or source.endswith("\n"):
        return False
    return bool(tree.body) and isinstance(tree.body[-1], _COMPOUND)


def compile_input(
    source: str, filename: str, echo_name: str, *, interactive: bool = False
) -> CompiledInput | None:
    """Compile console input, or None when more lines are needed (``needs_more_lines``).

    Raises ``SyntaxError`` (and ``ValueError`` for NUL bytes) as ``compile`` does. Parsed
    once: input that parses is never unfinished for ``codeop`` (which only looks further
    when compiling fails), so only the interactive rule is left to check, on the tree. One
    expression (never a compound statement, never unfinished) skips the tree: ``eval`` of its
    code gives the value to echo (``echo_value``); an expression that awaits takes the tree's
    way, so its coroutine runs the echo.
    """
    if source[:1] not in _BLANK and not _is_statement(source):
        try:
            code = compile(source, filename, "eval", dont_inherit=True)
        except (SyntaxError, ValueError, OverflowError):
            pass  # a statement, unfinished or wrong: the tree's way tells which
        else:
            return CompiledInput(code, False, echo_value=True)
    try:
        tree = ast.parse(source, filename, "exec")
    except (SyntaxError, ValueError, OverflowError):
        if _is_incomplete(source, filename):
            return None
        raise
    if interactive and not source.endswith("\n") and tree.body:
        if isinstance(tree.body[-1], _COMPOUND):
            return None
    _echo_expressions(tree.body, echo_name)
    code = compile(tree, filename, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
    return CompiledInput(code, bool(code.co_flags & inspect.CO_COROUTINE))


def completion_token(text: str) -> str:
    """The dotted name at the end of ``text`` that completion replaces."""
    match = _TOKEN_CHARS.match(text[::-1])  # linear: no backtracking over a long line
    length = match.end() if match is not None else 0
    return text[len(text) - length :]


def complete(namespace: dict[str, object], text: str) -> tuple[str, ...]:
    """Names and attributes that complete the dotted name ending ``text``, sorted.

    Each match replaces the whole token (``completion_token(text)``); callables end in
    ``(`` as in the interpreter. Attributes are looked up with ``getattr``, but
    properties are not run (``rlcompleter`` skips them).
    """
    token = completion_token(text)
    if not token or token[0].isdigit():
        return ()
    import rlcompleter  # here, not at import: it imports readline, no business in an app

    completer = rlcompleter.Completer(namespace)
    try:
        if "." in token:
            found = completer.attr_matches(token)
        else:
            found = completer.global_matches(token)
    except Exception:
        return ()
    unique = {match for match in found if HIDDEN_PREFIX not in match}
    return tuple(sorted(unique, key=lambda m: (m.rsplit(".", 1)[-1].startswith("_"), m)))[
        :MAX_COMPLETIONS
    ]


def make_helpers(
    namespace_of: Callable[[], Mapping[str, object]],
    local_names: Callable[[], list[str]],
    options: Options,
    what: str,
) -> dict[str, object]:
    """``dump`` and ``help`` for a namespace; ``local_names`` are what ``dump()`` lists."""

    def dump(*args: object) -> None:
        """dump() prints the variables here; dump(obj) prints obj's attributes."""
        namespace = namespace_of()
        if not args:
            items = {name: namespace[name] for name in local_names() if name in namespace}
            title = f"Local variables in {what}"
        else:
            obj = args[0]
            items = {}
            for name in dir(obj):
                if name.startswith("__") and name.endswith("__"):
                    continue
                try:
                    items[name] = getattr(obj, name)
                except Exception as error:
                    items[name] = error
            title = f"Details for {format_node(represent(obj, options))}"
        print(title)
        budget = Budget(_REPR_SECONDS)
        for variable in variables_of(items, options, budget):
            print(f"  {variable.name} = {format_node(variable.value)}")

    def help(*args: object) -> None:
        """help(obj) prints the documentation of obj, without a pager."""
        if not args:
            print("Type help(object) for help about object; dump() lists the variables here.")
            return
        import pydoc  # heavy, and only ever needed here

        print(pydoc.plain(pydoc.render_doc(args[0])))

    def input(prompt: object = "") -> str:
        """The console has no keyboard: reading one would block the eval for good."""
        raise EOFError("input() has no standard input in the debugbroker console")

    return {"dump": dump, "help": help, "input": input}
