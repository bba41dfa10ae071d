"""This process's agent: one ``Transport`` per process and ``Options``, made again after a fork.

``get_transport`` keeps one transport per process (per distinct ``Options``) and makes a new
one, with a new zmq context and agent id, when ``os.getpid()`` changes: a ``--preload``ed app
forked by gunicorn gets one healthy agent per worker and never uses zmq across a fork. It is
where the transport is given the evals' dispatcher, so the wire layer imports no eval code.
At process exit every agent of the process flushes its reports and says bye.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from collections.abc import Callable
from types import FrameType

from debugbroker.agent.breakpoints import Breakpoints
from debugbroker.agent.evals.dispatch import EvalDispatcher
from debugbroker.agent.evals.held_frames import FrameRegistry
from debugbroker.agent.options import Options
from debugbroker.agent.transport.link import BreakpointHandler, Dispatch
from debugbroker.agent.transport.transport import Transport
from debugbroker.protocol import Message

__all__ = ["get_transport", "current_transport", "eval_dispatcher", "breakpoint_handler"]

_transports: dict[Options, Transport] = {}
_transports_pid = os.getpid()
_transports_lock = threading.Lock()


def current_transport() -> Transport | None:
    """A transport this process already runs (the app's middleware made it), if any."""
    for transport in list(_transports.values()):
        if transport.pid == os.getpid() and not transport.closed:
            return transport
    return None


def get_transport(options: Options) -> Transport:
    """This process's transport for ``options``, made on first use and again after a fork."""
    transport = _transports.get(options)
    if transport is not None and transport.pid == os.getpid() and not transport.closed:
        return transport  # the fast path of every request: no lock
    with _transports_lock:
        _forget_if_forked()
        transport = _transports.get(options)
        if transport is None or transport.closed:
            transport = _transports[options] = Transport(
                options, eval_dispatcher, breakpoint_handler
            )
            try:
                _say_bye_in_multiprocessing_child()
            except Exception:  # an unusual multiprocessing: the heartbeat timeout still works
                pass
        return transport


def eval_dispatcher(
    registry: FrameRegistry, options: Options, answer: Callable[[Message], None]
) -> Dispatch:
    """The ``DispatchFactory`` every transport of the process gets: the evals' dispatcher."""
    return EvalDispatcher(registry, options, answer).handle


def breakpoint_handler(transport: Transport) -> BreakpointHandler:
    """The ``BreakpointsFactory`` every transport of the process gets: its hits pause
    through that transport."""

    def pause(frame: FrameType, origin: str) -> None:
        if transport.connected:  # nobody could resume it otherwise
            from debugbroker.agent.trace import pause_here  # trace imports this module

            pause_here(frame, transport, origin)

    return Breakpoints(evalex=transport.options.evalex, started=transport.started, pause=pause)


def _forget_if_forked() -> None:
    """Drop transports inherited from a parent process (their thread did not survive)."""
    global _transports_pid
    if _transports_pid == os.getpid():
        return
    for inherited in _transports.values():
        inherited.abandon_after_fork()
    _transports.clear()
    _transports_pid = os.getpid()


def _say_bye_at_exit() -> None:
    """At process exit, every agent of this process flushes its reports and says bye."""
    for transport in list(_transports.values()):
        if transport.pid == os.getpid():
            transport.say_bye()


atexit.register(_say_bye_at_exit)
_finalizer_pid = 0


def _say_bye_in_multiprocessing_child() -> None:
    """A ``multiprocessing`` child ends with ``os._exit`` after its finalizers, not atexit."""
    global _finalizer_pid
    util = sys.modules.get("multiprocessing.util")
    process = sys.modules.get("multiprocessing.process")
    if util is None or process is None or _finalizer_pid == os.getpid():
        return
    if process.parent_process() is None:  # the main process: atexit covers it
        return
    _finalizer_pid = os.getpid()
    util.Finalize(None, _say_bye_at_exit, exitpriority=100)


def _after_fork_in_child() -> None:
    global _transports_lock
    _transports_lock = threading.Lock()  # a parent thread may have held it at fork time
    _forget_if_forked()


_register_at_fork: Callable[..., None] | None = getattr(os, "register_at_fork", None)
if _register_at_fork is not None:  # not on Windows, which has no fork
    _register_at_fork(after_in_child=_after_fork_in_child)
