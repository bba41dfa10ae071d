"""The broker's zmq side: a ROUTER socket that admits agents, stores reports and routes evals.

Each agent's DEALER identity is its agent id, so routing is report → agent id → identity.
An agent proves the shared secret in its hello before anything else it sends is accepted;
a message from an identity that has not said hello (this broker restarted, say) is answered
with a hello request, and the agent re-registers on its own. ``ROUTER_MANDATORY`` makes a
send to a process whose connection is gone fail at once, so an eval on it fails fast.
Malformed messages are dropped and counted; nothing an agent sends can stop the loop.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import itertools
import logging
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import zmq
import zmq.asyncio
from zmq.utils.monitor import parse_monitor_message

from debugbroker.agent import codec, protocol
from debugbroker.agent.protocol import (
    CompleteRequest,
    CompleteResult,
    EvalRequest,
    EvalResult,
    ExpandRequest,
    ExpandResult,
    Heartbeat,
    Hello,
    HelloRequest,
    InterruptRequest,
    InterruptResult,
    Message,
    Ping,
    ProtocolError,
    Refused,
    SourceRequest,
    SourceResult,
    Welcome,
)

from .frames import report_frames
from .store import Store, report_summary
from .wire import WireReport, WireResult, decode_message

__all__ = ["Relay", "AgentState", "EvalFailure", "RelayStats"]

log = logging.getLogger("debugbroker.relay")
Publish = Callable[[dict[str, Any]], Awaitable[None]]
Received = Message | WireReport | WireResult  # what ``wire.decode_message`` gives
_MAX_PENDING_EVALS = 256
_PROBE_SECONDS = 0.25  # while an eval runs, how often its agent's connection is checked
_SIZE_SLACK = 64 * 1024
_INBOX_SIZE = 64  # messages read ahead of the receive loop (each up to MAX_MESSAGE_BYTES)
_ANSWERS = (WireResult, InterruptResult, ExpandResult, SourceResult)  # evals, completions: wire
# Reports received but not yet committed: past either bound the receive loop waits for the
# store, zmq buffers, and then the agents shed reports and count them.
# (A report's dicts take several times its message's size: 500 small ones are ~25 MB.)
_MAX_REPORT_BACKLOG = 500
_MAX_REPORT_BACKLOG_BYTES = 4 * 1024 * 1024
_HANDSHAKE_FAILED_EVENTS = (
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)
# After a connection closes (a worker SIGKILLed, say), the live agents are probed this many
# seconds later: the one whose connection it was is gone from the ROUTER, so it is marked
# gone at once instead of after the heartbeat timeout. Later probes cover a ROUTER that
# drops the connection's identity a little after the event.
_DISCONNECT_PROBES = (0.05, 0.5, 2.0)
_LOUD_EVENTS = 20  # log (and audit) the first refusals in full, then every 100th
_MAX_RELEASED = 10_000  # release times remembered for the report JSON (oldest forgotten)
# Plain ints: pyzmq's flags are enums, and ``int & enum`` builds an enum member per test.
_POLLIN, _NOBLOCK, _EVENTS = int(zmq.POLLIN), int(zmq.NOBLOCK), int(zmq.EVENTS)
_MORE_NOBLOCK = int(zmq.SNDMORE) | _NOBLOCK


def _worth_logging(count: int) -> bool:
    """Whether the ``count``-th event of a kind is logged: a flood must not flood the log."""
    return count <= _LOUD_EVENTS or count % 100 == 0


class EvalFailure(Exception):
    """An eval that could not reach its frame; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True)
class AgentState:
    """An agent process as the broker knows it."""

    agent_id: str
    pid: int
    host: str
    app: str
    python: str
    started: float
    evalex: bool
    last_seen: float
    alive: bool = False
    held_frames: int = 0
    dropped_reports: int = 0
    held_reports: int = 0  # reports whose frames it holds (heartbeat)
    held_bytes: int = 0  # its memory estimate of them (heartbeat)
    console: bool = False  # offers a console on the live process
    eval_timeout: float = 0.0  # the agent's own time limit per eval

    def to_json(self) -> dict[str, Any]:
        """The ``Agent`` object of the HTTP API."""
        return {
            "agent_id": self.agent_id,
            "pid": self.pid,
            "host": self.host,
            "app": self.app,
            "python": self.python,
            "started": self.started,
            "evalex": self.evalex,
            "alive": self.alive,
            "last_seen": self.last_seen,
            "held_frames": self.held_frames,
            "console": self.console and self.evalex,
            "dropped_reports": self.dropped_reports,
            "held_reports": self.held_reports,
            "held_bytes": self.held_bytes,
        }

    def record(self) -> dict[str, Any]:
        """The columns the store keeps."""
        return {
            name: getattr(self, name)
            for name in ("agent_id", "pid", "host", "app", "python", "started", "evalex")
        } | {"last_seen": self.last_seen}


@dataclass(slots=True)
class RelayStats:
    """Counters of what the relay dropped, for the log and the API."""

    malformed: int = 0
    refused: int = 0
    unexpected: int = 0
    reports: int = 0
    handshake_failed: int = 0  # zmq handshakes that failed (CurveZMQ key, garbage)
    oversized: int = 0  # over the cap but under the socket's hard limit (bigger ones cut)
    unadmitted: int = 0  # from an identity that has not said a valid hello
    not_stored: int = 0  # reports the store failed to write (logged)
    extra: dict[str, int] = field(default_factory=dict)


class Relay:
    """Owns the ROUTER socket; admits agents, stores their reports, routes evals to them."""

    def __init__(
        self,
        *,
        endpoint: str,
        secret: str,
        dashboard_url: str,
        store: Store,
        publish: Publish,
        agent_timeout: float = 10.0,
        eval_timeout: float = 30.0,
        curve_secret_key: str = "",
    ) -> None:
        self.endpoint = endpoint
        self.secret = secret
        self.curve_secret_key = curve_secret_key
        self.dashboard_url = dashboard_url
        self.store = store
        self.publish = publish
        self.agent_timeout = agent_timeout
        self.eval_timeout = eval_timeout
        self.agents: dict[str, AgentState] = {}
        self.paused: dict[str, str] = {}  # report id -> agent id, threads held at breakpoint()
        # Whose frames are held: report id -> agent id (its reports, hello and releases);
        # and when the broker learnt that a report's frames were released.
        self.held: dict[str, str] = {}
        self.released_at: OrderedDict[str, float] = OrderedDict()
        self.stats = RelayStats()
        self._pending: dict[str, tuple[str, asyncio.Future[Any]]] = {}  # evals and co.
        self._context = zmq.asyncio.Context()  # its sockets are asyncio ones (the monitor)
        # The ROUTER itself is a plain socket read by ``_on_readable``: answers to evals are
        # handed over in the same loop turn they arrive in, without pyzmq's future chain.
        self._socket: zmq.Socket[bytes] = zmq.Socket(self._context, zmq.ROUTER)
        self._inbox: deque[tuple[bytes, Received]] = deque()  # in order
        self._report_bytes = 0  # sizes of the reports received and not yet committed
        self._events: list[dict[str, Any]] = []  # report events waiting for the publisher
        self._publisher: asyncio.Task[None] | None = None
        self._stopped = False
        self._inbox_ready = asyncio.Event()
        self._reader_fd: int | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()  # started by timers (probes)
        self._disconnect_probed = -1e9  # loop time the last disconnect probes were scheduled
        # Request ids: unique per broker run (a random prefix), cheap per request (a counter);
        # only the agent asked may answer one, so they need not be unguessable.
        self._id_prefix = secrets.token_hex(4) + "-"
        self._ids = itertools.count(1)
        self.bound_endpoint = ""

    async def start(self) -> None:
        """Bind the socket, load known agents (all gone until they say hello) and start."""
        sock = self._socket
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        # Slightly above the cap, so a message just over it is read, dropped and counted;
        # zmq cuts the connection of anything bigger before buffering it.
        sock.setsockopt(zmq.MAXMSGSIZE, protocol.MAX_MESSAGE_BYTES + _SIZE_SLACK)
        if self.curve_secret_key:  # CurveZMQ: encrypted, only agents with our public key
            sock.curve_server = True
            sock.curve_secretkey = self.curve_secret_key.encode("ascii")
        monitor = sock.get_monitor_socket(_HANDSHAKE_FAILED_EVENTS | zmq.EVENT_DISCONNECTED)
        assert isinstance(monitor, zmq.asyncio.Socket)  # made by the asyncio context
        sock.bind(self.endpoint)
        self.bound_endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        reader_fd = int(sock.getsockopt(zmq.FD))
        asyncio.get_running_loop().add_reader(reader_fd, self._on_readable)
        self._reader_fd = reader_fd
        for record in await self.store.list_agents():
            state = AgentState(**record)
            self.agents[state.agent_id] = state
        self._tasks = [
            asyncio.create_task(self._receive_loop(), name="debugbroker-relay"),
            asyncio.create_task(self._liveness_loop(), name="debugbroker-liveness"),
            asyncio.create_task(self._monitor_loop(monitor), name="debugbroker-handshakes"),
        ]

    async def stop(self) -> None:
        """Stop the loops and close the socket."""
        self._stopped = True
        if self._publisher is not None:
            self._tasks.append(self._publisher)  # cancelled with the loops
        if self._reader_fd is not None:
            asyncio.get_running_loop().remove_reader(self._reader_fd)
            self._reader_fd = None
        self._tasks += self._background
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        for _, future in self._pending.values():
            if not future.done():
                future.set_exception(EvalFailure(503, "the broker is shutting down"))
        try:
            self._socket.disable_monitor()
        except zmq.ZMQError:
            pass
        self._socket.close(linger=0)
        self._context.term()

    # --- receiving ----------------------------------------------------------------------

    async def _monitor_loop(self, monitor: zmq.asyncio.Socket) -> None:
        """Count connections that fail the handshake (a wrong CurveZMQ key, say), and probe
        the agents when a connection closes."""
        try:
            while True:
                event = parse_monitor_message(await monitor.recv_multipart())
                if event["event"] == zmq.EVENT_DISCONNECTED:
                    self._probe_after_disconnect()
                    continue
                self.stats.handshake_failed += 1
                if _worth_logging(self.stats.handshake_failed):
                    log.warning(
                        "a connection failed the zmq handshake (%s; %d so far): an agent "
                        "without the right DEBUGBROKER_SERVER_KEY, or not a debugbroker agent",
                        zmq.Event(event["event"]).name,
                        self.stats.handshake_failed,
                    )
        finally:
            monitor.close(linger=0)

    def _on_readable(self) -> None:
        """Read what the ROUTER holds: answers resolve their evals at once, the rest waits
        in order for the receive loop (at most ``_INBOX_SIZE``; zmq buffers beyond that).

        zmq's descriptor signals edges, not levels, so this reads until ``EVENTS`` says
        nothing is left, and runs again after every send (which may take an edge).
        """
        sock = self._socket
        try:
            while len(self._inbox) < _INBOX_SIZE and int(sock.getsockopt(_EVENTS)) & _POLLIN:
                parsed = self._parse(sock.recv_multipart(_NOBLOCK))
                if parsed is not None and not self._answered(*parsed):
                    self._inbox.append(parsed)
                    self._inbox_ready.set()
        except zmq.Again:
            pass
        except zmq.ZMQError:  # closed: the relay is stopping
            pass

    def _answered(self, identity: bytes, message: Received) -> bool:
        """Hand an answer to the eval (or lookup) waiting for it; False if it is not one."""
        if not isinstance(message, _ANSWERS):
            return False
        agent = self.agents.get(identity.decode("utf-8", "replace"))
        pending = self._pending.get(message.request_id)
        if agent is None or not agent.alive or pending is None or pending[0] != agent.agent_id:
            return False  # the receive loop decides (a hello request, or unexpected)
        agent.last_seen = time.time()
        if not pending[1].done():
            pending[1].set_result(message)
        return True

    async def _receive_loop(self) -> None:
        while True:
            if not self._inbox:
                self._inbox_ready.clear()
                self._on_readable()  # reading may have paused on a full inbox
                if not self._inbox:
                    await self._inbox_ready.wait()
                    continue
            identity, message = self._inbox.popleft()
            self._on_readable()  # room again: read on, so answers need not wait behind reports
            try:
                await self._receive(identity, message)
            except Exception:  # one bad message must never stop the relay
                log.exception("error while handling an agent message")

    def _parse(self, frames: list[bytes]) -> tuple[bytes, Received] | None:
        """The sender and the message, or None (counted) for anything malformed."""
        if len(frames) < 2:
            self.stats.malformed += 1
            return None
        identity, payload = frames[0], frames[-1]
        if len(payload) > protocol.MAX_MESSAGE_BYTES:
            self.stats.oversized += 1
            if _worth_logging(self.stats.oversized):
                log.warning(
                    "dropped a message of %d bytes, over the %d-byte cap (%d so far)",
                    len(payload),
                    protocol.MAX_MESSAGE_BYTES,
                    self.stats.oversized,
                )
            return None
        try:
            message = decode_message(payload)  # reports, eval results: wire dicts
        except ProtocolError as error:
            self.stats.malformed += 1
            if _worth_logging(self.stats.malformed):
                log.warning(
                    "dropped a malformed message (%d so far): %.300s", self.stats.malformed, error
                )
            return None
        return identity, message

    async def _receive(self, identity: bytes, message: Received) -> None:
        agent_id = identity.decode("utf-8", "replace")
        if isinstance(message, Hello):
            await self._hello(identity, agent_id, message)
            return
        agent = self.agents.get(agent_id)
        if agent is None or not agent.alive:
            # Not admitted (or forgotten by a restart): ask for a hello, which carries the secret.
            self.stats.unadmitted += 1
            await self._send(identity, HelloRequest())
            return
        agent.last_seen = time.time()
        if isinstance(message, Heartbeat):
            before = (agent.held_frames, agent.dropped_reports, agent.held_reports)
            changed = before != (
                message.held_frames,
                message.dropped_reports,
                message.held_reports,
            )
            agent.held_frames = message.held_frames
            agent.dropped_reports = message.dropped_reports
            agent.held_reports = message.held_reports
            agent.held_bytes = message.held_bytes
            if changed:
                await self.publish({"type": "agent", "agent": agent.to_json()})
        elif isinstance(message, WireReport):
            await self._report(agent, message)
        elif isinstance(message, protocol.Resumed):
            if self.paused.get(message.report_id) == agent.agent_id:
                del self.paused[message.report_id]
            event = {"type": "resumed", "report_id": message.report_id, "reason": message.reason}
            await self.publish(event)
        elif isinstance(message, protocol.Released):
            ids = message.report_ids[: protocol.MAX_HELD_IDS]
            await self._frames_released(agent.agent_id, ids)
        elif isinstance(message, protocol.Bye):
            # the process exits: gone now, not later
            await self._mark_gone(agent, message.reason or "it exited")
        elif isinstance(message, _ANSWERS):
            pending = self._pending.get(message.request_id)
            if pending is not None and pending[0] == agent.agent_id and not pending[1].done():
                pending[1].set_result(message)
        else:
            self.stats.unexpected += 1

    async def _hello(self, identity: bytes, agent_id: str, hello: Hello) -> None:
        if hello.agent_id != agent_id:
            reason = "the hello's agent id does not match the connection's identity"
        elif not hmac.compare_digest(hello.secret.encode(), self.secret.encode()):
            reason = "wrong secret (set DEBUGBROKER_SECRET to the broker's secret)"
        elif hello.protocol != protocol.PROTOCOL_VERSION:
            reason = (
                f"protocol version {hello.protocol} is not supported "
                f"(this broker speaks {protocol.PROTOCOL_VERSION}); upgrade debugbroker"
            )
        else:
            reason = ""
        if reason:
            self.stats.refused += 1
            if _worth_logging(self.stats.refused):  # never the secret; names quoted (%r)
                log.warning(
                    "refused agent %.200r (pid %s on %.100r): %s (%d refused so far)",
                    agent_id,
                    hello.pid,
                    hello.host,
                    reason,
                    self.stats.refused,
                )
                await self.store.add_audit(
                    {
                        "at": time.time(),
                        "action": "agent_refused",
                        "agent_id": agent_id[:200],
                        "outcome": "refused",
                        "detail": f"{reason}; pid {hello.pid} on {hello.host[:100]!r}; "
                        f"{self.stats.refused} refused so far",
                    }
                )
            await self._send(identity, Refused(reason=reason))
            return
        known = self.agents.get(agent_id)
        agent = AgentState(
            agent_id=agent_id,
            pid=hello.pid,
            host=hello.host,
            app=hello.app,
            python=hello.python,
            started=hello.started,
            evalex=hello.evalex,
            console=hello.console,
            eval_timeout=hello.eval_timeout,
            last_seen=time.time(),
            alive=True,
            held_frames=known.held_frames if known else 0,
        )
        self.agents[agent_id] = agent
        # Threads still paused at breakpoint() (this broker may have restarted meanwhile);
        # only the agent's own paused reports count.
        for report_id in [r for r, owner in self.paused.items() if owner == agent_id]:
            del self.paused[report_id]
        # The frames it still holds (only its own reports count: see ``frames_held``).
        still_held = set(hello.held[: protocol.MAX_HELD_IDS])
        gone = [r for r, owner in self.held.items() if owner == agent_id and r not in still_held]
        for report_id in still_held:
            self.held[report_id] = agent_id
        await self._frames_released(agent_id, gone)
        for report_id in hello.paused[:64]:
            found = await self.store.get_report(report_id)
            if found and found.get("agent_id") == agent_id and found.get("paused"):
                self.paused[report_id] = agent_id
        await self.store.save_agent(agent.record())
        await self._send(identity, Welcome(dashboard_url=self.dashboard_url))
        if known is None or not known.alive:
            log.info("agent %s connected (pid %d on %s)", agent_id, hello.pid, hello.host)
            await self.store.add_audit(
                {
                    "at": agent.last_seen,
                    "action": "agent_admitted",
                    "agent_id": agent_id,
                    "outcome": "ok",
                    "detail": f"pid {hello.pid} on {hello.host!r}, app {hello.app!r}, "
                    f"evalex={hello.evalex}",
                }
            )
        await self.publish({"type": "agent", "agent": agent.to_json()})

    async def _report(self, agent: AgentState, message: WireReport) -> None:
        """Queue a report for the store's next batch without waiting for it (unless the
        backlog is full); it is counted and announced once committed (``_stored``).

        Which frames are held, and which thread is paused, is noted now, in message order,
        so that a ``Released`` or ``Resumed`` right behind it finds the note.
        """
        report = message.report
        if report["agent_id"] != agent.agent_id:
            report["agent_id"] = agent.agent_id  # an agent speaks for itself only
        if report.get("paused"):
            self.paused[report["id"]] = agent.agent_id
        if _holds_frames(report):
            self.held[report["id"]] = agent.agent_id
        stored = self.store.queue_report(report)
        self._report_bytes += message.size
        stored.add_done_callback(functools.partial(self._stored, report, message.size))
        backlog = self.store.report_backlog
        if backlog >= _MAX_REPORT_BACKLOG or self._report_bytes >= _MAX_REPORT_BACKLOG_BYTES:
            await asyncio.wait({stored})  # the store is behind: stop reading until it catches up
        else:  # let the rest of the loop run (HTTP, committed batches): a storm never ends
            await asyncio.sleep(0)

    def _stored(self, report: dict[str, Any], size: int, stored: asyncio.Future[bool]) -> None:
        """A report's batch is committed (or failed): count it and tell the dashboards."""
        self._report_bytes -= size
        error = None if stored.cancelled() else stored.exception()
        if stored.cancelled() or error is not None:
            self.stats.not_stored += 1
            log.error("report %.100s could not be stored: %s", report["id"], error or "cancelled")
            for notes in (self.held, self.paused):
                if notes.get(report["id"]) == report["agent_id"]:
                    del notes[report["id"]]
            return
        if not stored.result():
            return  # already stored (sent again after a reconnect)
        self.stats.reports += 1
        self._events.append({"type": "report", "report": report_summary(report)})
        if not self._stopped and (self._publisher is None or self._publisher.done()):
            self._publisher = asyncio.get_running_loop().create_task(self._publish_reports())

    async def _publish_reports(self) -> None:
        """Announce stored reports in order: one task for all those committed meanwhile."""
        while self._events:
            events, self._events = self._events, []
            for event in events:
                await self.publish(event)

    async def _liveness_loop(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.agent_timeout / 4))
            now = time.time()
            for agent in list(self.agents.values()):
                if agent.alive and now - agent.last_seen > self.agent_timeout:
                    await self._mark_gone(agent, "no heartbeat")

    async def _mark_gone(self, agent: AgentState, why: str) -> None:
        if not agent.alive:
            return
        agent.alive = False
        for report_id in [r for r, owner in self.paused.items() if owner == agent.agent_id]:
            del self.paused[report_id]
        for report_id in [r for r, owner in self.held.items() if owner == agent.agent_id]:
            del self.held[report_id]  # gone with the process (the agent event says so)
        failure = EvalFailure(410, _gone_message(agent))
        for owner, future in self._pending.values():
            if owner == agent.agent_id and not future.done():
                future.set_exception(failure)
        log.info("agent %s (pid %d on %s) is gone: %s", agent.agent_id, agent.pid, agent.host, why)
        await self.store.save_agent(agent.record())
        await self.publish({"type": "agent", "agent": agent.to_json()})

    # --- sending ------------------------------------------------------------------------

    async def _send(self, identity: bytes, message: Message) -> bool:
        """Send to one agent; False when its connection is gone (``ROUTER_MANDATORY``)."""
        return self._send_now(identity, message)

    def _send_now(self, identity: bytes, message: Message) -> bool:
        """``_send`` from a callback: the send itself never waits."""
        try:
            return not self._deliver(identity, codec.encode(message))
        finally:  # a send may take the edge that said a message arrived: look again now
            self._on_readable()

    def _deliver(self, identity: bytes, payload: bytes) -> int:
        """Send ``payload`` to ``identity`` without waiting: 0, or ``EHOSTUNREACH`` (no such
        connection, ``ROUTER_MANDATORY``) or ``EAGAIN`` (its queue is full)."""
        try:
            self._socket.send(identity, _MORE_NOBLOCK)  # what send_multipart does, minus
            self._socket.send(payload, _NOBLOCK)  # its checks and enum flags
        except zmq.ZMQError as error:
            if error.errno in (zmq.EHOSTUNREACH, zmq.EAGAIN):
                return int(error.errno)
            raise
        return 0

    def frames_held(self, report_id: str, agent_id: str) -> bool:
        """Whether the live agent ``agent_id`` (the report's own) still holds its frames."""
        agent = self.agents.get(agent_id)
        return bool(agent and agent.alive and self.held.get(report_id) == agent_id)

    async def _frames_released(self, agent_id: str, report_ids: Sequence[str]) -> None:
        """Forget that ``agent_id`` holds these reports' frames and tell the dashboards."""
        now = time.time()
        released = [r for r in report_ids if self.held.get(r) == agent_id]
        for report_id in released:
            del self.held[report_id]
            self.released_at[report_id] = now
            self.released_at.move_to_end(report_id)
        while len(self.released_at) > _MAX_RELEASED:
            self.released_at.popitem(last=False)
        if released:
            await self.publish({"type": "frames", "report_ids": released, "held": False, "at": now})

    async def release(self, report_id: str, agent_id: str) -> None:
        """Ask the agent to drop the frames of ``report_id`` now; ``EvalFailure`` if it can't."""
        agent = self.agents.get(agent_id)
        if agent is None or not agent.alive:
            raise EvalFailure(410, _gone_message(agent))
        if self.held.get(report_id) != agent_id:
            raise EvalFailure(409, "frames already released: the agent no longer holds them")
        if not await self._send(agent_id.encode(), protocol.Release(report_id=report_id)):
            await self._mark_gone(agent, "its connection closed")
            raise EvalFailure(410, _gone_message(agent))
        # The agent handles messages in order: any eval sent after this finds no frame.
        await self._frames_released(agent_id, [report_id])

    async def resume(self, report_id: str) -> None:
        """Let the thread paused at ``breakpoint()`` in ``report_id`` go on; ``EvalFailure``."""
        agent_id = self.paused.get(report_id)
        if agent_id is None:
            raise EvalFailure(409, "this report is not paused: its thread already went on")
        agent = self.agents.get(agent_id)
        if agent is None or not agent.alive:
            raise EvalFailure(410, _gone_message(agent))
        if not await self._send(agent_id.encode(), protocol.Resume(report_id=report_id)):
            await self._mark_gone(agent, "its connection closed")
            raise EvalFailure(410, _gone_message(agent))
        self.paused.pop(report_id, None)

    async def evaluate(
        self, agent_id: str, frame_id: str, code: str, *, interactive: bool = False
    ) -> WireResult:
        """Run ``code`` in a frame held by ``agent_id``: its ``EvalResult`` as a checked wire
        dict (``wire.WireResult``); raises ``EvalFailure`` when it can't.

        The wait is the broker's eval timeout, or longer when the agent's own time limit
        is (the agent interrupts the code and answers first).
        """
        agent = self._eval_agent(agent_id)
        wait = max(self.eval_timeout, agent.eval_timeout + 5.0 if agent.eval_timeout else 0.0)
        request_id = self._request_id()
        request = EvalRequest(
            request_id=request_id, frame_id=frame_id, code=code, interactive=interactive
        )
        return _expect_wire(await self._ask(agent, request_id, request, wait), EvalResult)

    async def complete(self, agent_id: str, frame_id: str, text: str) -> WireResult:
        """Completions for ``text`` in a frame held by ``agent_id``: its ``CompleteResult``
        as a checked wire dict; ``EvalFailure`` if not."""
        agent = self._eval_agent(agent_id)
        request_id = self._request_id()
        request = CompleteRequest(request_id=request_id, frame_id=frame_id, text=text)
        result = await self._ask(agent, request_id, request, self.eval_timeout)
        return _expect_wire(result, CompleteResult)

    async def interrupt(self, agent_id: str, frame_id: str) -> InterruptResult:
        """Interrupt the evals running in a frame held by ``agent_id``; ``EvalFailure`` if not."""
        agent = self._eval_agent(agent_id)
        request_id = self._request_id()
        request = InterruptRequest(request_id=request_id, frame_id=frame_id)
        result = await self._ask(agent, request_id, request, self.eval_timeout)
        if not isinstance(result, InterruptResult):
            raise EvalFailure(502, "the agent answered with the wrong kind of message")
        return result

    async def look_up(
        self, agent_id: str, request: ExpandRequest | SourceRequest
    ) -> ExpandResult | SourceResult:
        """Ask the agent holding a frame for more of a value or its source (no evalex needed:
        nothing runs but the reprs capture already ran); ``EvalFailure`` when it can't."""
        agent = self.agents.get(agent_id)
        if agent is None or not agent.alive:
            raise EvalFailure(410, _gone_message(agent))
        if len(self._pending) >= _MAX_PENDING_EVALS:
            raise EvalFailure(503, "too many requests are running; try again when one ends")
        result = await self._ask(agent, request.request_id, request, self.eval_timeout)
        if isinstance(result, WireResult) and result.cls is EvalResult:  # all slots busy
            raise EvalFailure(503, result.wire["error"] or "the agent is busy")
        if not isinstance(result, (ExpandResult, SourceResult)):
            raise EvalFailure(502, "the agent answered with the wrong kind of message")
        return result

    def _eval_agent(self, agent_id: str) -> AgentState:
        """The live agent that may run code, or ``EvalFailure``."""
        agent = self.agents.get(agent_id)
        if agent is None or not agent.alive:
            raise EvalFailure(410, _gone_message(agent))
        if not agent.evalex:
            raise EvalFailure(403, "code execution is disabled in this agent (evalex=False)")
        if len(self._pending) >= _MAX_PENDING_EVALS:
            raise EvalFailure(503, "too many evals are running; try again when one ends")
        return agent

    def _request_id(self) -> str:
        return f"{self._id_prefix}{next(self._ids)}"

    async def _ask(self, agent: AgentState, request_id: str, request: Message, wait: float) -> Any:
        """Send ``request`` and wait up to ``wait`` seconds for the answer with its id.

        The answer's future is awaited directly; a timer meanwhile probes the agent's
        connection every ``_PROBE_SECONDS`` and fails the future at the deadline (cheaper
        than ``asyncio.wait`` per probe interval: no waiter future, one loop turn less).
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending[request_id] = (agent.agent_id, future)
        identity = agent.agent_id.encode()
        timer: list[asyncio.TimerHandle] = []
        try:
            if not await self._send(identity, request):
                await self._mark_gone(agent, "its connection closed")
                raise EvalFailure(410, _gone_message(agent))
            probe = _Probe(self, agent, identity, future, loop.time() + wait, wait, timer)
            probe.arm(loop)
            return await future
        finally:
            if timer:
                timer[0].cancel()
            self._pending.pop(request_id, None)

    def _probe_after_disconnect(self) -> None:
        """Schedule the probes of ``_DISCONNECT_PROBES`` (once per burst of closes)."""
        loop = asyncio.get_running_loop()
        if loop.time() - self._disconnect_probed < _DISCONNECT_PROBES[0]:
            return  # the probes scheduled a moment ago cover this close too
        self._disconnect_probed = loop.time()
        for delay in _DISCONNECT_PROBES:
            loop.call_later(delay, self._probe_agents)

    def _probe_agents(self) -> None:
        """Mark every live agent whose connection the ROUTER no longer has as gone."""
        if self._stopped:
            return
        ping = codec.encode(Ping())
        for agent in list(self.agents.values()):
            if not agent.alive:
                continue
            if self._deliver(agent.agent_id.encode(), ping) == zmq.EHOSTUNREACH:
                # (EAGAIN: the connection is there, only busy)
                self._in_background(self._mark_gone(agent, "its connection closed"))
        self._on_readable()  # a send may take the edge that said a message arrived

    def _in_background(self, work: Awaitable[None]) -> None:
        """Run ``work`` as a task the relay keeps until it ends (errors are logged)."""
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a relay task failed", exc_info=task.exception())


@dataclass(frozen=True, slots=True)
class _Probe:
    """While a request waits: probe its agent's connection every ``_PROBE_SECONDS``, and
    fail the answer's future with a 504 at the deadline. ``timer`` holds the next call."""

    relay: Relay
    agent: AgentState
    identity: bytes
    future: asyncio.Future[Any]
    deadline: float  # on the loop's clock
    wait: float
    timer: list[asyncio.TimerHandle]

    def arm(self, loop: asyncio.AbstractEventLoop) -> None:
        at = min(loop.time() + _PROBE_SECONDS, self.deadline)
        handle = loop.call_at(at, self.run, at >= self.deadline)
        self.timer[:] = [handle]

    def run(self, at_deadline: bool) -> None:
        if self.future.done():
            return
        if at_deadline:
            late = f"the agent (pid {self.agent.pid}) did not answer within {self.wait:g} seconds"
            self.future.set_exception(EvalFailure(504, late))
            return
        # A request sent just as the process died is lost with its connection; a probe to
        # a gone connection fails at once (ROUTER_MANDATORY), and marking the agent gone
        # fails this future with a 410 (before its first await).
        if not self.relay._send_now(self.identity, Ping()):
            self.relay._in_background(self.relay._mark_gone(self.agent, "its connection closed"))
        self.arm(asyncio.get_running_loop())


def _expect_wire(result: object, cls: type[EvalResult] | type[CompleteResult]) -> WireResult:
    """``result`` if it is an answer of class ``cls``; a 502 ``EvalFailure`` if the agent
    answered with another kind of message under the request's id."""
    if not isinstance(result, WireResult) or result.cls is not cls:
        raise EvalFailure(502, "the agent answered with the wrong kind of message")
    return result


def _holds_frames(report: dict[str, Any]) -> bool:
    """Whether a wire report names a held frame (``frame_id`` set) in any exception."""
    return any(frame.get("frame_id") for frame in report_frames(report.get("exceptions")))


def _gone_message(agent: AgentState | None) -> str:
    where = f" (pid {agent.pid} on {agent.host})" if agent else ""
    return f"process gone: the worker process that raised this error{where} has exited"
