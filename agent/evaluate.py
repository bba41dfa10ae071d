"""Run code in a held frame, like Werkzeug's console: persistent namespace, echo, captured output.

The namespace of a frame is a copy of its globals updated with its locals, made on the first
eval and kept for the next ones, with ``dump()`` and ``help()`` added and ``_`` holding the
last result that was not None. Code is parsed once: if its last statement is an expression,
the statements before it run in "exec" mode and the expression is evaluated and echoed (the
rule of the interactive interpreter's "single" mode, without touching ``sys.displayhook``).

``sys.stdout``/``sys.stderr`` are process-wide and other request threads keep printing, so
while any eval runs they are wrapped in a proxy that routes the evaluating thread's writes
to its buffer and everyone else's to the real stream; the last eval out restores them.
"""

from __future__ import annotations

import ast
import io
import itertools
import linecache
import pydoc
import sys
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from types import CodeType, TracebackType
from typing import Any, TextIO

from .frames import FrameRegistry, HeldFrame
from .options import Options
from .protocol import EvalRequest, EvalResult
from .reprs import Budget, describe_error, format_node, represent, variables_of

__all__ = ["run_eval", "EVALEX_DISABLED"]

EVALEX_DISABLED = "code execution is disabled in this agent (evalex=False)"
_MAX_OUTPUT = 1024 * 1024  # characters of captured output per eval
_EVAL_REPR_SECONDS = 0.5
_eval_numbers = itertools.count(1)


class _BoundedBuffer(io.StringIO):
    """A StringIO that keeps at most ``_MAX_OUTPUT`` characters and counts the rest."""

    def __init__(self) -> None:
        super().__init__()
        self.dropped = 0

    def write(self, text: str) -> int:
        room = _MAX_OUTPUT - self.tell()
        if len(text) > room:
            self.dropped += len(text) - max(0, room)
            text = text[: max(0, room)]
        super().write(text)
        return len(text)

    def result(self) -> str:
        output = self.getvalue()
        if self.dropped:
            output += f"\n[{self.dropped} more characters of output cut]\n"
        return output


class _ThreadRouter:
    """Stands in for a standard stream: the evaluating threads write to their own buffers."""

    def __init__(self, original: TextIO) -> None:
        self.original = original
        self.buffers: dict[int, _BoundedBuffer] = {}

    def write(self, text: str) -> int:
        buffer = self.buffers.get(threading.get_ident())
        if buffer is not None:
            return buffer.write(text)
        return self.original.write(text)

    def writelines(self, lines: list[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if threading.get_ident() not in self.buffers:
            self.original.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.original, name)


_router_lock = threading.Lock()
_routers: dict[str, _ThreadRouter] = {}
_active_evals = 0


@contextmanager
def _captured_output(buffer: _BoundedBuffer) -> Iterator[None]:
    """Route this thread's stdout/stderr writes to ``buffer`` while the block runs."""
    global _active_evals
    ident = threading.get_ident()
    with _router_lock:
        for name in ("stdout", "stderr"):
            router = _routers.get(name)
            if router is None or getattr(sys, name) is not router:
                router = _routers[name] = _ThreadRouter(getattr(sys, name))
                setattr(sys, name, router)
            router.buffers[ident] = buffer
        _active_evals += 1
    try:
        yield
    finally:
        with _router_lock:
            _active_evals -= 1
            for name in ("stdout", "stderr"):
                router = _routers.get(name)
                if router is None:
                    continue
                router.buffers.pop(ident, None)
                if _active_evals == 0:
                    if getattr(sys, name) is router:
                        setattr(sys, name, router.original)
                    del _routers[name]


def _make_helpers(held: HeldFrame, options: Options) -> dict[str, object]:
    """``dump`` and ``help`` for a frame's namespace (bound to that frame)."""
    local_names = list(held.frame.f_locals)

    def dump(*args: object) -> None:
        """dump() prints the frame's locals; dump(obj) prints obj's attributes."""
        namespace = held.namespace
        if not args:
            items = {name: namespace[name] for name in local_names if name in namespace}
            title = "Local variables in frame"
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
        budget = Budget(_EVAL_REPR_SECONDS)
        for variable in variables_of(items, options, budget):
            print(f"  {variable.name} = {format_node(variable.value)}")

    def help(*args: object) -> None:
        """help(obj) prints the documentation of obj, without a pager."""
        if not args:
            print("Type help(object) for help about object; dump() shows the frame's locals.")
            return
        print(pydoc.plain(pydoc.render_doc(args[0])))

    return {"dump": dump, "help": help}


def _compile(source: str, filename: str) -> tuple[CodeType | None, CodeType | None]:
    """Statements to exec and a trailing expression to evaluate (either may be None)."""
    tree = ast.parse(source, filename, "exec")
    last: ast.expr | None = None
    final = tree.body[-1] if tree.body else None
    if isinstance(final, ast.Expr):
        tree.body.pop()
        last = final.value
    statements = compile(tree, filename, "exec", dont_inherit=True) if tree.body else None
    expression = (
        compile(ast.Expression(last), filename, "eval", dont_inherit=True)
        if last is not None
        else None
    )
    return statements, expression


def _strip_own_frames(tb: TracebackType | None) -> TracebackType | None:
    """Skip this module's frames at the top, like InteractiveInterpreter.showtraceback."""
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return tb


def _execute(held: HeldFrame, code: str, options: Options) -> EvalResult:
    request_id = ""
    filename = f"<debugbroker-eval-{next(_eval_numbers)}>"
    namespace = held.get_namespace(lambda ns: ns.update(_make_helpers(held, options)))
    buffer = _BoundedBuffer()
    # Registered so tracebacks show the lines; removed once the traceback is formatted.
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    try:
        try:
            statements, expression = _compile(code, filename)
        except (SyntaxError, ValueError, OverflowError) as error:
            lines = traceback.format_exception_only(type(error), error)
            return EvalResult(request_id=request_id, ok=False, error="".join(lines))
        value: object = None
        try:
            with _captured_output(buffer):
                if statements is not None:
                    exec(statements, namespace)
                if expression is not None:
                    value = eval(expression, namespace)
        except BaseException as error:  # SystemExit and KeyboardInterrupt too: never the worker
            lines = traceback.format_exception(
                type(error), error, _strip_own_frames(error.__traceback__)
            )
            return EvalResult(
                request_id=request_id, ok=False, output=buffer.result(), error="".join(lines)
            )
        if value is not None:
            namespace["_"] = value
        result = (
            represent(value, options, budget=Budget(_EVAL_REPR_SECONDS))
            if value is not None
            else None
        )
        return EvalResult(request_id=request_id, ok=True, output=buffer.result(), result=result)
    finally:
        linecache.cache.pop(filename, None)


def run_eval(registry: FrameRegistry, request: EvalRequest, options: Options) -> EvalResult:
    """Run ``request.code`` in the held frame it names and report the outcome; never raises."""
    if not options.evalex:
        return EvalResult(request_id=request.request_id, ok=False, error=EVALEX_DISABLED)
    held = registry.get(request.frame_id)
    if held is None:
        error = (
            "frame released: the agent no longer holds this frame "
            f"(it keeps the {registry.max_reports} most recent reports); "
            "the report stays readable"
        )
        return EvalResult(request_id=request.request_id, ok=False, error=error)
    try:
        outcome = _execute(held, request.code, options)
    except BaseException as error:  # a bug here must not kill the I/O thread
        outcome = EvalResult(
            request_id="",
            ok=False,
            error=f"debugbroker could not run this code: {describe_error(error)}",
        )
    return EvalResult(
        request_id=request.request_id,
        ok=outcome.ok,
        output=outcome.output,
        result=outcome.result,
        error=outcome.error,
    )
