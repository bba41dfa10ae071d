"""Run console input in a held frame (or the process console), on the calling thread.

The namespace of a frame is a copy of its globals updated with its locals, made on the first
eval and kept, with ``dump()``, ``help()``, ``input()`` (EOF: there is no keyboard) and
``_`` (the last echoed value). Each eval runs under the timers of ``interrupts`` (time
limit, interrupt button); ``start_eval`` and ``start_complete`` run on the caller's thread
(the agent's I/O thread, for the broker's requests) and answer through a callback,
``run_eval`` and ``run_complete`` hand them to the eval pool and wait. In a frame that ran
on an event loop (``loops.ran_on_a_loop``: an ``async def``'s, or one it called), every
input runs on the app's running loop, in a task of its own, as the frame's code did:
``asyncio.get_running_loop()`` works and the loop waits while the input runs, as under pdb.
Elsewhere input runs on the calling thread, and code that awaits at the top level runs on the
app's running loop when there is one, else on a fresh loop (``loops.app_loop``). Contexts
the app preserved for the report (Flask's app and request context, via
``register_context_source``) are entered around it. Echoed results get far larger limits
than locals (``result_options``); cut ones keep their value for "+"
(``lookup.answer_expand``).
"""

from __future__ import annotations

import asyncio
import builtins
import concurrent.futures
import dataclasses
import functools
import itertools
import linecache
import threading
import traceback
import weakref
from collections.abc import Callable, Coroutine
from contextlib import AbstractContextManager, ExitStack
from types import TracebackType
from typing import Any

from debugbroker.agent.evals.held_frames import FrameRegistry, HeldFrame
from debugbroker.agent.evals.interrupts import (
    TIMERS,
    EvalRun,
    Once,
    interrupt_runs,
    supervise,
    wait_for_answer,
)
from debugbroker.agent.evals.language import (
    HIDDEN_PREFIX,
    CompiledInput,
    compile_input,
    complete,
    completion_token,
    make_helpers,
)
from debugbroker.agent.evals.loops import AppLoop, app_loop, ran_on_a_loop
from debugbroker.agent.evals.output import ChunkBuffer, captured_output, routed_to
from debugbroker.agent.options import Options
from debugbroker.agent.reprs.safe_text import describe_error
from debugbroker.agent.reprs.secret_names import secret_pattern
from debugbroker.agent.reprs.secret_values import mask_traceback
from debugbroker.agent.reprs.tree import Budget, represent
from debugbroker.protocol import (
    CONSOLE_FRAME_ID,
    DISABLED,
    RELEASED,
    TIMEOUT,
    CompleteRequest,
    CompleteResult,
    EvalRequest,
    EvalResult,
    InterruptRequest,
    InterruptResult,
    OutputChunk,
    ReprNode,
)

__all__ = [
    "RESULT_CHARACTERS",
    "RESULT_ITEMS",
    "result_options",
    "run_eval",
    "run_complete",
    "start_eval",
    "start_complete",
    "KEPT_RESULTS",
    "interrupt",
    "register_context_source",
    "EVALEX_DISABLED",
    "CONSOLE_DISABLED",
]

EVALEX_DISABLED = "code execution is disabled in this agent (evalex=False)"
CONSOLE_DISABLED = "this agent offers no console (DebuggedApplication(app, console=True))"
_REPR_SECONDS = 0.5
# A value typed at the console is shown nearly whole, as Werkzeug's console prints it, but
# still bounded (the rest behind "+"): far larger limits than a frame's locals get.
RESULT_ITEMS = 100  # items of a list, tuple or set; pairs of a dict
RESULT_CHARACTERS = 10_000  # characters of a string, or of an object's own repr
_COMPLETE_TIMEOUT = 2.0
_eval_numbers = itertools.count(1)
_result_numbers = itertools.count(1)
KEPT_RESULTS = 50  # echoed values per namespace kept alive for "+"
_KEPT_KEY = f"{HIDDEN_PREFIX}results"
_Refusal = tuple[str, str]  # (reason, message): why an eval or completion cannot run


class _Target:
    """What an eval runs in: a held frame or the process console."""

    __slots__ = ("key", "report_id", "get_namespace", "expandable", "on_loop")

    def __init__(
        self,
        key: str,
        report_id: str,
        get_namespace: Callable[[], dict[str, object]],
        *,
        expandable: bool = False,
        on_loop: bool = False,
    ) -> None:
        self.key = key
        self.report_id = report_id
        self.get_namespace = get_namespace
        self.expandable = expandable  # "+" handles of results resolve (lookup.py) in frames
        self.on_loop = on_loop  # the frame ran on an event loop: its input runs on the app's


def _has_handle(node: ReprNode) -> bool:
    """Whether ``node`` or a node below it was cut short (it has a "+" handle)."""
    return node.more is not None or any(_has_handle(child) for child in node.children)


def _keep_result(namespace: dict[str, object], name: str, value: object) -> None:
    """Keep ``value`` under a hidden name for the "+" of its result; the last few only."""
    kept = namespace.setdefault(_KEPT_KEY, [])
    assert isinstance(kept, list)
    namespace[name] = value
    kept.append(name)
    while len(kept) > KEPT_RESULTS:
        namespace.pop(kept.pop(0), None)


_context_sources: list[weakref.WeakMethod[Callable[[str], tuple[object, ...]]]] = []
_context_locks: dict[str, threading.Lock] = {}
_lock = threading.Lock()  # registrations and the context locks
_console_lock = threading.Lock()
_console_namespace: dict[str, object] | None = None


def register_context_source(source: Callable[[str], tuple[object, ...]]) -> None:
    """Register a bound method giving the contexts preserved for a report id (the middleware)."""
    with _lock:
        _context_sources[:] = [ref for ref in _context_sources if ref() is not None]
        _context_sources.append(weakref.WeakMethod(source))


def _preserved_contexts(report_id: str) -> list[AbstractContextManager[object]]:
    found: list[AbstractContextManager[object]] = []
    for ref in list(_context_sources):
        source = ref()
        if source is None:
            continue
        try:
            contexts = source(report_id)
        except Exception:
            continue
        found += [c for c in contexts if isinstance(c, AbstractContextManager)]
    return found


def _frame_target(held: HeldFrame, options: Options) -> _Target:
    def setup(namespace: dict[str, object]) -> None:
        namespace.update(
            make_helpers(lambda: held.namespace, lambda: list(held.frame_locals), options, "frame")
        )

    return _Target(
        held.frame_id,
        held.report_id,
        lambda: held.get_namespace(setup),
        expandable=True,
        on_loop=ran_on_a_loop(held.frame),
    )


def _console_target(options: Options) -> _Target:
    def get_namespace() -> dict[str, object]:
        global _console_namespace
        with _console_lock:
            if _console_namespace is None:
                namespace: dict[str, object] = {"__name__": "__console__", "__builtins__": builtins}
                initial = set(namespace) | {"dump", "help", "input"}

                def names() -> list[str]:
                    return [
                        name
                        for name in namespace
                        if name not in initial and not name.startswith(HIDDEN_PREFIX)
                    ]

                namespace.update(make_helpers(lambda: namespace, names, options, "the console"))
                _console_namespace = namespace
            return _console_namespace

    return _Target(CONSOLE_FRAME_ID, "", get_namespace)


def _target(registry: FrameRegistry, frame_id: str, options: Options) -> _Target | _Refusal:
    """The eval's target, or why there is none."""
    if frame_id == CONSOLE_FRAME_ID:
        return _console_target(options) if options.console else (DISABLED, CONSOLE_DISABLED)
    held = registry.get(frame_id)
    if held is None:
        return (
            RELEASED,
            "frame released: the agent no longer holds this frame "
            "(released from the dashboard, or it keeps only the "
            f"{registry.max_reports} most recent reports); "
            "the report stays readable",
        )
    return _frame_target(held, options)


def _user_traceback(tb: TracebackType | None, filename: str) -> TracebackType | None:
    """The traceback from the first frame of the eval's own code on (no debugger frames)."""
    start = tb
    while start is not None and start.tb_frame.f_code.co_filename != filename:
        start = start.tb_next
    return start if start is not None else None


def _await(coroutine: Coroutine[Any, Any, object], buffer: ChunkBuffer, run: EvalRun) -> object:
    """Run a top-level-await coroutine on the app's loop (or a fresh one) and wait for it.

    Scheduling and cancelling happen with interrupts held back, so a ``KeyboardInterrupt``
    never lands between scheduling the task and knowing it (which would leave it running).
    """
    found = app_loop()
    if found is None:
        fresh = asyncio.new_event_loop()
        task = fresh.create_task(coroutine)
        run.scheduled = True
        try:
            return fresh.run_until_complete(task)
        finally:
            run.disarm()
            if not task.done():
                task.cancel()
                fresh.run_until_complete(asyncio.gather(task, return_exceptions=True))
            fresh.close()

    async def routed() -> object:
        with routed_to(buffer):  # the app's other tasks keep their own output
            return await coroutine

    run.disarm()
    future = asyncio.run_coroutine_threadsafe(routed(), found.loop)
    run.scheduled = True
    try:
        run.arm()
        while True:
            try:
                return future.result(timeout=0.05)  # short waits: an interrupt lands between
            except concurrent.futures.TimeoutError:
                continue
    except BaseException:
        run.disarm()
        future.cancel()
        raise


def _on_loop(
    found: AppLoop,
    compiled: CompiledInput,
    namespace: dict[str, Any],
    buffer: ChunkBuffer,
    run: EvalRun,
    echo: Callable[[object], None],
) -> None:
    """Run one input on the app's loop, in a task of its own, and wait for it here.

    Interrupts land in the loop's thread only while the input's own code runs there (``arm``
    and ``disarm`` on that thread); while it awaits, the loop runs other tasks, so an
    interrupt cancels the task instead. ``KeyboardInterrupt`` and ``SystemExit`` come back as
    values: raised out of a task, they would stop the app's loop.
    """

    async def line() -> BaseException | None:
        with routed_to(buffer):  # the app's other tasks keep their own output
            try:
                run.arm()
                try:
                    value = eval(compiled.code, namespace)
                    if compiled.echo_value:  # one expression: echoed here, never awaited
                        echo(value)
                        value = None
                finally:
                    run.disarm()
                if isinstance(value, Coroutine):  # a top-level await: on this loop too
                    await value
            except asyncio.CancelledError:
                raise
            except BaseException as error:  # noqa: BLE001 - handed to the eval thread
                return error
        return None

    future = asyncio.run_coroutine_threadsafe(line(), found.loop)
    run.scheduled = True
    while True:
        try:
            raised = future.result(timeout=0.05)  # short waits: an interrupt is noticed
        except concurrent.futures.TimeoutError:
            if run.reason is not None:  # interrupted while it awaits (or before it started)
                future.cancel()
            continue
        except concurrent.futures.CancelledError:
            raise KeyboardInterrupt from None
        if raised is not None:
            raise raised
        return


_last_shown: tuple[Options, Options] | None = None  # the last options given, and their result's


def result_options(options: Options) -> Options:
    """``options`` with the console's limits for echoed results (never lower than a local's)."""
    global _last_shown
    last = _last_shown  # (one read: another thread may replace it)
    if last is not None and last[0] is options:  # a process has one: no hashing per eval
        return last[1]
    shown = _result_options(options)
    _last_shown = (options, shown)
    return shown


@functools.lru_cache(maxsize=16)  # made once per options, not per eval
def _result_options(options: Options) -> Options:
    return dataclasses.replace(
        options,
        repr_items=max(options.repr_items, RESULT_ITEMS),
        repr_pairs=max(options.repr_pairs, RESULT_ITEMS),
        repr_string=max(options.repr_string, RESULT_CHARACTERS),
        repr_text=max(options.repr_text, RESULT_CHARACTERS),
    )


def _execute(run: EvalRun, target: _Target, request: EvalRequest, options: Options) -> EvalResult:
    """Compile and run the input on this (the eval's own) thread."""
    filename = f"<console-{next(_eval_numbers)}>"
    echo_name = f"{HIDDEN_PREFIX}echo_{filename[9:-1]}"
    request_id = request.request_id
    try:
        compiled = compile_input(request.code, filename, echo_name, interactive=request.interactive)
    except (SyntaxError, ValueError, OverflowError) as invalid:
        lines = traceback.format_exception_only(type(invalid), invalid)
        return EvalResult(request_id=request_id, ok=False, error="".join(lines))
    except (RecursionError, MemoryError) as deep:  # the parser's own limits, not the code's
        too_deep = f"{type(deep).__name__}: the input is nested too deeply for Python's parser\n"
        return EvalResult(request_id=request_id, ok=False, error=too_deep)
    if compiled is None:
        return EvalResult(request_id=request_id, ok=True, incomplete=True)
    namespace = target.get_namespace()
    found = app_loop() if target.on_loop else None
    loop = found if found is not None and not found.paused else None
    buffer = ChunkBuffer(secret_pattern(options))
    shown = result_options(options)

    def echo(value: object) -> None:
        if value is None:
            return
        namespace["_"] = value
        name = f"{HIDDEN_PREFIX}result_{next(_result_numbers)}" if target.expandable else None
        node = represent(value, shown, budget=Budget(_REPR_SECONDS), name=name)
        if name is not None and _has_handle(node):  # kept only if something was cut, for "+"
            _keep_result(namespace, name, value)
        buffer.add(OutputChunk(stream="result", value=node))

    namespace[echo_name] = echo
    # Registered so tracebacks show the lines; removed once the traceback is formatted.
    linecache.cache[filename] = (len(request.code), None, request.code.splitlines(True), filename)
    error: BaseException | None = None
    value: object = None
    contexts = _preserved_contexts(target.report_id) if target.report_id else []
    with _lock:
        lock = _context_locks.setdefault(target.report_id, threading.Lock()) if contexts else None
    try:
        with ExitStack() as stack, captured_output(buffer):
            try:
                if lock is not None:  # one eval at a time may push a report's contexts
                    while not lock.acquire(timeout=0.05):
                        if run.reason is not None:
                            raise KeyboardInterrupt
                    stack.callback(lock.release)
                    for context in contexts:  # not armed yet: no interrupt half-way
                        stack.enter_context(context)
                if loop is not None:  # interrupts land on the loop's thread: no arm here
                    _on_loop(loop, compiled, namespace, buffer, run, echo)
                elif compiled.echo_value:  # one expression: its value is echoed here
                    run.arm()
                    echo(eval(compiled.code, namespace))
                else:
                    run.arm()
                    value = eval(compiled.code, namespace)
                    if isinstance(value, Coroutine):  # the input awaits at the top level
                        _await(value, buffer, run)
            except BaseException as raised:  # SystemExit and KeyboardInterrupt too
                error = raised
            if loop is None:
                run.disarm()
            if isinstance(value, Coroutine) and not run.scheduled:
                value.close()  # interrupted before it reached a loop: no "never awaited"
        if error is None:
            return buffer.result(request_id, ok=True)
        lines = traceback.format_exception(
            type(error), error, _user_traceback(error.__traceback__, filename)
        )
        if isinstance(error, KeyboardInterrupt) and run.reason:
            lines.append(f"(the eval was {run.reason})\n")
        return buffer.result(
            request_id, ok=False, error=mask_traceback(lines, secret_pattern(options))
        )
    finally:
        namespace.pop(echo_name, None)
        linecache.cache.pop(filename, None)


def start_eval(
    registry: FrameRegistry,
    request: EvalRequest,
    options: Options,
    answer: Callable[[EvalResult], object],
) -> None:
    """Run ``request.code`` on this (an eval) thread in the frame it names, and ``answer``
    once with the outcome, maybe from a timer while this thread is still stuck; never raises."""

    def answer_with_id(result: EvalResult) -> None:
        if result.request_id != request.request_id:  # made without it (a timer's, say)
            result = dataclasses.replace(result, request_id=request.request_id)
        answer(result)

    if not options.evalex:
        answer_with_id(EvalResult(request_id="", ok=False, error=EVALEX_DISABLED, reason=DISABLED))
        return
    once = Once(answer_with_id)
    try:
        target = _target(registry, request.frame_id, options)
        if isinstance(target, tuple):
            once(EvalResult(request_id="", ok=False, error=target[1], reason=target[0]))
            return
        supervise(
            target.key,
            lambda run: _execute(run, target, request, options),
            options.eval_timeout_seconds,
            once,
        )
    except BaseException as error:  # a bug here must not kill the eval thread
        once(
            EvalResult(
                request_id="",
                ok=False,
                error=f"debugbroker could not run this code: {describe_error(error)}",
            )
        )


def run_eval(registry: FrameRegistry, request: EvalRequest, options: Options) -> EvalResult:
    """``start_eval`` on an eval thread, waiting for its answer; never raises."""

    def start(answer: Callable[[EvalResult], object]) -> None:
        start_eval(registry, request, options, answer)

    return wait_for_answer(start)


def interrupt(request: InterruptRequest) -> InterruptResult:
    """Interrupt every eval running in the frame; never raises (called on the I/O thread)."""
    count = interrupt_runs(request.frame_id, "interrupted from the dashboard")
    return InterruptResult(request_id=request.request_id, interrupted=count)


def start_complete(
    registry: FrameRegistry,
    request: CompleteRequest,
    options: Options,
    answer: Callable[[CompleteResult], object],
) -> None:
    """Completions for the text in the frame's namespace, found on this (an eval) thread and
    answered once; past ``_COMPLETE_TIMEOUT`` a timer answers instead; never raises."""
    once = Once(answer)
    if not options.evalex:
        once(
            CompleteResult(
                request_id=request.request_id, ok=False, error=EVALEX_DISABLED, reason=DISABLED
            )
        )
        return
    target = _target(registry, request.frame_id, options)
    if isinstance(target, tuple):
        once(
            CompleteResult(
                request_id=request.request_id, ok=False, error=target[1], reason=target[0]
            )
        )
        return

    def too_long() -> None:  # (made only when it is needed, seldom)
        once(
            CompleteResult(
                request_id=request.request_id,
                ok=False,
                error="completion took too long",
                reason=TIMEOUT,
            )
        )

    timer = TIMERS.after(_COMPLETE_TIMEOUT, too_long)
    try:
        matches = complete(target.get_namespace(), request.text)
    except BaseException:
        matches = ()
    timer.cancel()
    token = completion_token(request.text)
    once(
        CompleteResult(request_id=request.request_id, ok=True, matches=matches, replace=len(token))
    )


def run_complete(
    registry: FrameRegistry, request: CompleteRequest, options: Options
) -> CompleteResult:
    """``start_complete`` on an eval thread, waiting for its answer; never raises."""

    def start(answer: Callable[[CompleteResult], object]) -> None:
        start_complete(registry, request, options, answer)

    return wait_for_answer(start)
