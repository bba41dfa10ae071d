"""Run console input in a held frame (or the process console): threads, time limit, interrupt.

Each eval runs on its own thread; the caller waits for it up to ``eval_timeout_seconds``.
An interrupt (from the dashboard, or the time limit) raises ``KeyboardInterrupt`` in that
thread with ``PyThreadState_SetAsyncExc``. CPython delivers such an exception only when the
thread runs Python bytecode, so a pure-Python loop stops at once, but a thread blocked in a
C call (``time.sleep``, a socket read, a lock wait) stops only when the call returns: the
interrupt is then repeated every ``_REPEAT_SECONDS`` until it lands, and after
``_GRACE_SECONDS`` the caller answers without waiting ("still blocked"). Such threads are
counted; while ``_MAX_STUCK`` are stuck, new evals are refused instead of piling up.

The namespace of a frame is a copy of its globals updated with its locals, made on the
first eval and kept, with ``dump()``, ``help()`` and ``_`` (the last echoed value). Code that
awaits at the top level runs on the app's running event loop when there is one (see
``_running_loop``), else on a fresh loop. Contexts the app preserved for the report
(Flask's app and request context, via ``register_context_source``) are entered around it.
"""

from __future__ import annotations

import asyncio
import builtins
import concurrent.futures
import ctypes
import dataclasses
import gc
import itertools
import linecache
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Coroutine
from contextlib import AbstractContextManager, ExitStack
from types import TracebackType
from typing import Any

from .console import HIDDEN_PREFIX, compile_input, complete, completion_token, make_helpers
from .frames import FrameRegistry, HeldFrame
from .lookup import fill_handles
from .options import Options
from .output import ChunkBuffer, captured_output, routed_to
from .protocol import (
    CONSOLE_FRAME_ID,
    CompleteRequest,
    CompleteResult,
    EvalRequest,
    EvalResult,
    InterruptRequest,
    InterruptResult,
    OutputChunk,
)
from .reprs import Budget, describe_error, represent

__all__ = [
    "run_eval",
    "run_complete",
    "interrupt",
    "register_context_source",
    "EVALEX_DISABLED",
    "CONSOLE_DISABLED",
]

EVALEX_DISABLED = "code execution is disabled in this agent (evalex=False)"
CONSOLE_DISABLED = "this agent offers no console (DebuggedApplication(app, console=True))"
_REPR_SECONDS = 0.5
_GRACE_SECONDS = 1.0  # after an interrupt, how long to wait for the code to stop
_REPEAT_SECONDS = 0.25  # how often an interrupt that has not landed is repeated
_MAX_STUCK = 4
_COMPLETE_TIMEOUT = 2.0
_eval_numbers = itertools.count(1)
_result_numbers = itertools.count(1)
_KEPT_RESULTS = 50  # echoed values per namespace kept alive for "+"
_KEPT_KEY = f"{HIDDEN_PREFIX}results"


def _set_async_exc(ident: int, exception: type[BaseException] | None) -> int:
    """Make ``exception`` pending in thread ``ident`` (None clears one); threads affected."""
    # No argtypes on the shared pythonapi function: other libraries call it too.
    argument = ctypes.py_object(exception) if exception is not None else ctypes.c_void_p()
    return int(ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), argument))


class _Target:
    """What an eval runs in: a held frame or the process console."""

    __slots__ = ("key", "report_id", "get_namespace", "expandable")

    def __init__(
        self,
        key: str,
        report_id: str,
        get_namespace: Callable[[], dict[str, object]],
        *,
        expandable: bool = False,
    ) -> None:
        self.key = key
        self.report_id = report_id
        self.get_namespace = get_namespace
        self.expandable = expandable  # "+" handles of results resolve (lookup.py) in frames


def _keep_result(namespace: dict[str, object], name: str, value: object) -> None:
    """Keep ``value`` under a hidden name for the "+" of its result; the last few only."""
    kept = namespace.setdefault(_KEPT_KEY, [])
    assert isinstance(kept, list)
    namespace[name] = value
    kept.append(name)
    while len(kept) > _KEPT_RESULTS:
        namespace.pop(kept.pop(0), None)


class _Run:
    """One running eval thread and the interrupts aimed at it."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.ident = 0
        self.lock = threading.Lock()
        self.in_user_code = False
        self.reason: str | None = None  # why it was interrupted, once it was
        self.finished = threading.Event()  # the thread is done with the user's code
        self.abandoned = False  # the caller answered without it (it was stuck)
        self.scheduled = False  # a top-level-await coroutine was handed to a loop
        self.result: EvalResult | None = None

    def arm(self) -> None:
        """Enter user code: interrupts land from now on (one already asked for, at once)."""
        with self.lock:
            self.ident = threading.get_ident()
            if self.reason is not None:
                raise KeyboardInterrupt
            self.in_user_code = True

    def disarm(self) -> None:
        """Leave user code: no interrupt can land after this returns."""
        while True:
            try:
                with self.lock:
                    self.in_user_code = False
                    _set_async_exc(self.ident, None)  # drop one that was sent but not raised
                return
            except KeyboardInterrupt:
                continue  # it landed on the way out: try again

    def interrupt(self, reason: str) -> bool:
        """Raise KeyboardInterrupt in the thread now if it runs user code, else when it does."""
        with self.lock:
            if self.reason is None:
                self.reason = reason
            if not self.in_user_code:
                return not self.finished.is_set()  # arm() raises it
            return bool(_set_async_exc(self.ident, KeyboardInterrupt) == 1)


_running_lock = threading.Lock()
_running: dict[str, set[_Run]] = {}
_stuck = 0
_context_sources: list[weakref.WeakMethod[Callable[[str], tuple[object, ...]]]] = []
_context_locks: dict[str, threading.Lock] = {}
_console_lock = threading.Lock()
_console_namespace: dict[str, object] | None = None


def register_context_source(source: Callable[[str], tuple[object, ...]]) -> None:
    """Register a bound method giving the contexts preserved for a report id (the middleware)."""
    with _running_lock:
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


def interrupt(request: InterruptRequest) -> InterruptResult:
    """Interrupt every eval running in the frame; never raises (called on the I/O thread)."""
    with _running_lock:
        runs = list(_running.get(request.frame_id, ()))
    count = sum(1 for run in runs if run.interrupt("interrupted from the dashboard"))
    return InterruptResult(request_id=request.request_id, interrupted=count)


def _frame_target(held: HeldFrame, options: Options) -> _Target:
    def setup(namespace: dict[str, object]) -> None:
        namespace.update(
            make_helpers(
                lambda: held.namespace, lambda: list(held.frame.f_locals), options, "frame"
            )
        )

    return _Target(
        held.frame_id, held.report_id, lambda: held.get_namespace(setup), expandable=True
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


def _target(registry: FrameRegistry, frame_id: str, options: Options) -> _Target | str:
    """The eval's target, or why there is none."""
    if frame_id == CONSOLE_FRAME_ID:
        return _console_target(options) if options.console else CONSOLE_DISABLED
    held = registry.get(frame_id)
    if held is None:
        return (
            "frame released: the agent no longer holds this frame "
            "(released from the dashboard, or it keeps only the "
            f"{registry.max_reports} most recent reports); "
            "the report stays readable"
        )
    return _frame_target(held, options)


def _user_traceback(tb: TracebackType | None, filename: str) -> TracebackType | None:
    """The traceback from the first frame of the eval's own code on (no debugger frames)."""
    start = tb
    while start is not None and start.tb_frame.f_code.co_filename != filename:
        start = start.tb_next
    return start if start is not None else None


def _running_loop() -> asyncio.AbstractEventLoop | None:
    """An event loop running in another thread of this process (the app's), or None.

    First by its ``run_forever`` frame on a thread's stack (cheap); a loop whose
    ``run_forever`` is compiled (uvloop) has no such frame, so then by a walk over the objects
    the garbage collector tracks (slower, and only ever for code that awaits). With several
    running loops the first found wins.
    """
    run_forever = asyncio.base_events.BaseEventLoop.run_forever.__code__
    me = threading.get_ident()
    for ident, frame in sys._current_frames().items():
        if ident == me:
            continue
        walker: Any = frame
        while walker is not None:
            if walker.f_code is run_forever:
                loop = walker.f_locals.get("self")
                if isinstance(loop, asyncio.AbstractEventLoop) and loop.is_running():
                    return loop
            walker = walker.f_back
    for candidate in gc.get_objects():
        if isinstance(candidate, asyncio.AbstractEventLoop) and candidate.is_running():
            return candidate
    return None


def _await(coroutine: Coroutine[Any, Any, object], buffer: ChunkBuffer, run: _Run) -> object:
    """Run a top-level-await coroutine on the app's loop (or a fresh one) and wait for it.

    Scheduling and cancelling happen with interrupts held back, so a ``KeyboardInterrupt``
    never lands between scheduling the task and knowing it (which would leave it running).
    """
    loop = _running_loop()
    if loop is None:
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
    future = asyncio.run_coroutine_threadsafe(routed(), loop)
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


def _execute(run: _Run, target: _Target, request: EvalRequest, options: Options) -> EvalResult:
    """Compile and run the input on this (the eval's own) thread."""
    filename = f"<console-{next(_eval_numbers)}>"
    echo_name = f"{HIDDEN_PREFIX}echo_{filename[9:-1]}"
    try:
        compiled = compile_input(request.code, filename, echo_name, interactive=request.interactive)
    except (SyntaxError, ValueError, OverflowError) as invalid:
        lines = traceback.format_exception_only(type(invalid), invalid)
        return EvalResult(request_id="", ok=False, error="".join(lines))
    if compiled is None:
        return EvalResult(request_id="", ok=True, incomplete=True)
    namespace = target.get_namespace()
    buffer = ChunkBuffer()

    def echo(value: object) -> None:
        if value is None:
            return
        namespace["_"] = value
        node = represent(value, options, budget=Budget(_REPR_SECONDS))
        if target.expandable:  # kept only if something was cut, for its "+"
            name = f"{HIDDEN_PREFIX}result_{next(_result_numbers)}"
            handled = fill_handles(node, [name])
            if handled is not node:
                _keep_result(namespace, name, value)
                node = handled
        buffer.add(OutputChunk(stream="result", value=node))

    namespace[echo_name] = echo
    # Registered so tracebacks show the lines; removed once the traceback is formatted.
    linecache.cache[filename] = (len(request.code), None, request.code.splitlines(True), filename)
    error: BaseException | None = None
    value: object = None
    contexts = _preserved_contexts(target.report_id) if target.report_id else []
    with _running_lock:
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
                run.arm()
                value = eval(compiled.code, namespace)
                if isinstance(value, Coroutine):  # the input awaits at the top level
                    _await(value, buffer, run)
            except BaseException as raised:  # SystemExit and KeyboardInterrupt too
                error = raised
            run.disarm()
            if isinstance(value, Coroutine) and not run.scheduled:
                value.close()  # interrupted before it reached a loop: no "never awaited"
        if error is None:
            return buffer.result(ok=True)
        lines = traceback.format_exception(
            type(error), error, _user_traceback(error.__traceback__, filename)
        )
        if isinstance(error, KeyboardInterrupt) and run.reason:
            lines.append(f"(the eval was {run.reason})\n")
        return buffer.result(ok=False, error="".join(lines))
    finally:
        namespace.pop(echo_name, None)
        linecache.cache.pop(filename, None)


def run_eval(registry: FrameRegistry, request: EvalRequest, options: Options) -> EvalResult:
    """Run ``request.code`` in the frame it names and report the outcome; never raises."""
    if not options.evalex:
        return EvalResult(request_id=request.request_id, ok=False, error=EVALEX_DISABLED)
    try:
        outcome = _supervise(registry, request, options)
    except BaseException as error:  # a bug here must not kill the caller's thread
        outcome = EvalResult(
            request_id="",
            ok=False,
            error=f"debugbroker could not run this code: {describe_error(error)}",
        )
    return _with_id(outcome, request.request_id)


def _with_id(result: EvalResult, request_id: str) -> EvalResult:
    return dataclasses.replace(result, request_id=request_id)


def _supervise(registry: FrameRegistry, request: EvalRequest, options: Options) -> EvalResult:
    """Start the eval thread, enforce the time limit, and answer even if it stays stuck."""
    global _stuck
    target = _target(registry, request.frame_id, options)
    if isinstance(target, str):
        return EvalResult(request_id="", ok=False, error=target)
    if _stuck >= _MAX_STUCK:
        return EvalResult(
            request_id="",
            ok=False,
            error=f"{_stuck} evals are still blocked in calls that cannot be interrupted; "
            "no new eval starts until one of them returns",
        )
    run = _Run(target.key)

    def body() -> None:
        global _stuck
        try:
            run.result = _execute(run, target, request, options)
        except BaseException as error:
            run.result = EvalResult(request_id="", ok=False, error=describe_error(error))
        finally:
            with _running_lock:
                _running.get(run.key, set()).discard(run)
                if run.abandoned:
                    _stuck -= 1
                run.finished.set()

    with _running_lock:
        _running.setdefault(run.key, set()).add(run)
    thread = threading.Thread(target=body, name="debugbroker-eval", daemon=True)
    thread.start()
    limit = options.eval_timeout_seconds
    deadline = time.monotonic() + limit if limit > 0 else None
    interrupted_at: float | None = None
    while not run.finished.wait(_REPEAT_SECONDS):
        now = time.monotonic()
        if deadline is not None and now >= deadline and run.reason is None:
            run.interrupt(f"stopped after the time limit of {limit:g} seconds")
        if run.reason is not None:
            interrupted_at = interrupted_at or now
            if now - interrupted_at >= _GRACE_SECONDS:
                break
            run.interrupt(run.reason)  # again: a blocked C call swallowed nothing yet
    with _running_lock:
        if run.finished.is_set():
            assert run.result is not None
            return run.result
        _stuck += 1
        run.abandoned = True
    threading.Thread(target=_keep_interrupting, args=(run,), daemon=True).start()
    return EvalResult(
        request_id="",
        ok=False,
        error=f"KeyboardInterrupt: the eval was {run.reason}, but it is blocked in a call "
        "that cannot be interrupted (time.sleep, a socket read, a lock…); it stops when "
        "that call returns",
    )


def _keep_interrupting(run: _Run) -> None:
    """Repeat the interrupt for a stuck eval until it stops (it may never: then forever)."""
    while not run.finished.wait(_REPEAT_SECONDS):
        run.interrupt(run.reason or "interrupted")


def run_complete(
    registry: FrameRegistry, request: CompleteRequest, options: Options
) -> CompleteResult:
    """Completions for the text in the frame's namespace; never raises, bounded in time."""
    if not options.evalex:
        return CompleteResult(request_id=request.request_id, ok=False, error=EVALEX_DISABLED)
    target = _target(registry, request.frame_id, options)
    if isinstance(target, str):
        return CompleteResult(request_id=request.request_id, ok=False, error=target)
    found: list[tuple[str, ...]] = []

    def body() -> None:
        try:
            found.append(complete(target.get_namespace(), request.text))
        except BaseException:
            found.append(())

    thread = threading.Thread(target=body, name="debugbroker-complete", daemon=True)
    thread.start()
    thread.join(_COMPLETE_TIMEOUT)
    if not found:
        return CompleteResult(
            request_id=request.request_id, ok=False, error="completion took too long"
        )
    token = completion_token(request.text)
    return CompleteResult(
        request_id=request.request_id, ok=True, matches=found[0], replace=len(token)
    )
