"""The agent's link to the broker as the app sees it: one ``Transport`` per process.

Request threads only call ``Transport.submit_report``, which puts the report in the
``Mailbox`` (mailbox.py) and wakes the I/O thread; it never touches zmq. That thread runs a
``Link`` (link.py), the only user of the zmq socket: it says hello, sends reports once the
broker has welcomed it, heartbeats, and runs requests that run app code through the dispatch
the transport was given (``agent/process.py`` gives it the evals' dispatcher), which answers
through the link. The transport reads the link's state only through its public attributes,
and the link reaches the app's threads only through the mailbox.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable

from debugbroker.agent.evals.held_frames import FrameRegistry
from debugbroker.agent.options import Options
from debugbroker.agent.transport.link import AgentIdentity, BreakpointHandler, Dispatch, Link
from debugbroker.agent.transport.mailbox import Mailbox, Pause
from debugbroker.agent.transport.repeats import RepeatBudget
from debugbroker.protocol import Message, Report

__all__ = ["Transport", "DispatchFactory", "BreakpointsFactory", "make_agent_id"]

# Given the registry, the options and where answers go, makes what runs app-code requests.
DispatchFactory = Callable[[FrameRegistry, Options, Callable[[Message], None]], Dispatch]
# Given the transport, makes what arms the broker's breakpoints in this process.
BreakpointsFactory = Callable[["Transport"], BreakpointHandler]

# A request thread that finds the report queue over half full while the broker is there waits
# (GIL released) until the I/O thread brings it under a quarter, at most this long: a thread
# raising errors back to back in pure Python otherwise holds the GIL for 5 ms at a time, the
# I/O thread sends one report per turn, and the queue sheds most of them.
_BACKLOG_WAIT_SECONDS = 0.005


def make_agent_id() -> str:
    """A new id for this process: ``uuid-pid-host`` (the broker routes by it)."""
    try:
        host = socket.gethostname()[:100]
    except OSError:
        host = ""
    return f"{uuid.uuid4().hex}-{os.getpid()}-{host}"


class Transport:
    """One process's connection to the broker: a mailbox, held frames and an I/O thread."""

    def __init__(
        self,
        options: Options,
        dispatch: DispatchFactory,
        breakpoints: BreakpointsFactory | None = None,
    ) -> None:
        self.options = options
        self.agent_id = make_agent_id()
        self.pid = os.getpid()
        self.host = self.agent_id.split("-", 2)[2]
        self.started = time.time()
        self.registry = FrameRegistry(options.held_reports, options.held_bytes)
        self.mailbox = Mailbox(options.queue_size)
        # The storm policy: errors past their budget are counted (repeats.py).
        self.repeats = RepeatBudget(options.repeat_burst, options.repeat_per_second)
        identity = AgentIdentity(self.agent_id, self.pid, self.host, self.started)
        # The I/O thread's loop: the only user of the zmq socket.
        self.breakpoints = breakpoints(self) if breakpoints is not None else None
        self._link = Link(
            options,
            identity,
            self.mailbox,
            self.registry,
            lambda answer: dispatch(self.registry, options, answer),
            self.breakpoints,
            self.repeats,
        )
        self._thread = threading.Thread(
            target=self._link.run, name=f"debugbroker-agent-{self.pid}", daemon=True
        )
        self._thread.start()

    @property
    def connected(self) -> bool:
        """Whether the broker has welcomed this agent and the connection is up."""
        return self._link.welcomed.is_set()

    @property
    def dashboard_url(self) -> str:
        """The dashboard's base URL: the broker's (from its welcome), else the configured one."""
        return (self._link.welcome_url or self.options.dashboard_url).rstrip("/")

    @property
    def refused_reason(self) -> str | None:
        """Why the broker refused this agent (its last word), or None."""
        return self._link.refused_reason

    @property
    def malformed_messages(self) -> int:
        """Messages from the broker that could not be read (dropped and counted)."""
        return self._link.malformed_messages

    @property
    def stored_reports(self) -> int:
        """Reports the broker acknowledged: committed to its store (``protocol.Stored``)."""
        return self._link.stored_reports

    @property
    def last_stored(self) -> tuple[str, ...]:
        """The ids of the latest acknowledged reports (at most 10,000), oldest first."""
        return tuple(self._link.last_stored)

    @property
    def unproven_requests(self) -> int:
        """Requests from a peer whose welcome proved nothing (dropped and counted)."""
        return self._link.unproven_requests

    @property
    def dropped_reports(self) -> int:
        """Reports shed from a full queue or too big to send."""
        return self.mailbox.dropped_reports

    @property
    def backlog_waits(self) -> tuple[int, float]:
        """How often an app thread waited for the I/O thread (the queue over half full while
        the broker is there), and the seconds it waited in all."""
        return self.mailbox.backlog_waits, self.mailbox.backlog_wait_seconds

    @property
    def counted_repeats(self) -> int:
        """Errors counted, not captured (the storm policy), since the process started."""
        return self.repeats.counted

    @property
    def pending_repeats(self) -> int:
        """Counted errors not yet sent to the broker."""
        return self.repeats.pending

    @property
    def queued_reports(self) -> int:
        """Reports waiting for the broker."""
        return self.mailbox.queued_reports

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called (or the I/O thread said bye)."""
        return self.mailbox.stopping

    def wait_connected(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the broker's welcome (tests and demos)."""
        return self._link.welcomed.wait(timeout)

    def submit_report(self, report: Report) -> None:
        """Queue a report for the broker; never raises. It waits only while the queue is over
        half full and the broker is there, at most ``_BACKLOG_WAIT_SECONDS``."""
        try:
            dropped, backlog = self.mailbox.put_report(report, hold_back=self.connected)
            if dropped is not None:
                self.registry.release_report(dropped.id)
            if backlog:  # let the I/O thread catch up (see _BACKLOG_WAIT_SECONDS)
                self.mailbox.wait_for_room(_BACKLOG_WAIT_SECONDS)
        except Exception:  # a request thread must never see the agent fail
            pass

    def close(self, timeout: float = 5.0) -> None:
        """Stop the I/O thread and close the socket (tests; a process normally keeps it)."""
        if not self.mailbox.stop():
            return
        if self.breakpoints is not None:
            self.breakpoints.clear()
        if threading.current_thread() is not self._link.serving:  # (an eval may call this)
            self._link.finished.wait(timeout)
        self.mailbox.close()

    def say_bye(self, timeout: float = 2.0) -> None:
        """At process exit: send queued reports and a bye, waiting at most ``timeout``."""
        if self.mailbox.stopping or not self.connected:
            return  # nobody to tell: exit at once
        if threading.current_thread() is self._link.serving:
            return
        self.mailbox.request_bye()
        self._link.finished.wait(timeout)

    def start_pause(self, report_id: str) -> Pause:
        """Register a pause; it ends when someone presses Continue or takes a step."""
        return self.mailbox.start_pause(report_id)

    def end_pause(self, report_id: str, reason: str) -> None:
        """The paused thread goes on (``continue``, ``step`` or ``timeout``): tell the broker."""
        self.mailbox.end_pause(report_id, reason)

    def abandon_after_fork(self) -> None:
        """In a forked child: forget the parent's thread and zmq objects, free the wake pair."""
        self.mailbox.abandon_after_fork()
