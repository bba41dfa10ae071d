"""The broker's zmq side: a ROUTER socket that admits agents, stores reports and routes evals.

Each agent's DEALER identity is its agent id, so routing is report → agent id → identity.
The socket is a CurveZMQ server whose key pair, like the agents' client key that the ZAP
handler (``relay_watch.KeyCheck``) admits, is derived from the shared secret
(``protocol.keys``): only holders of the secret get through the handshake, on either side,
and the link is encrypted. Plain zmq only when asked (``insecure_plaintext``). An agent then
proves the secret in its hello (an HMAC, never the secret itself) before anything else it
sends is accepted; a message from an identity that has not said hello (this broker
restarted, say) is answered with a hello request, and the agent re-registers on its own.
``ROUTER_MANDATORY`` makes a send to a process whose connection is gone fail at once, so an
eval on it fails fast.
Malformed messages are dropped and counted; nothing an agent sends can stop the loop.

This module owns the socket, reads it and hands each message to its part:
``agents`` (admission, liveness, what each agent holds), ``reports`` (reports into the
store) and ``requests`` (evals and lookups waiting for their answers: ``Relay.requests``,
which the HTTP side asks directly); ``watch`` reads the socket's monitor (failed
handshakes, closed connections).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable

import zmq
import zmq.asyncio
from zmq.auth.asyncio import AsyncioAuthenticator

from debugbroker import protocol
from debugbroker.broker.relay.agents import AgentRegistry, AgentState, Publish, gone_message
from debugbroker.broker.relay.breakpoints import BreakpointBook
from debugbroker.broker.relay.reports import ReportIntake
from debugbroker.broker.relay.requests import ANSWERS, EvalFailure, Requests
from debugbroker.broker.relay.stats import RelayStats, worth_logging
from debugbroker.broker.relay.watch import WATCHED_EVENTS, ConnectionWatch, KeyCheck
from debugbroker.broker.store.store import Store
from debugbroker.broker.wire import WireReport, WireResult, decode_message
from debugbroker.protocol import (
    GONE,
    STOPPING,
    Heartbeat,
    Hello,
    HelloRequest,
    Message,
    ProtocolError,
    encoder,
    keys,
)

__all__ = ["Relay"]

log = logging.getLogger("debugbroker.relay")
Received = Message | WireReport | WireResult  # what ``wire.decode_message`` gives
_SIZE_SLACK = 64 * 1024
_INBOX_SIZE = 64  # messages read ahead of the receive loop (each up to MAX_MESSAGE_BYTES)
# Plain ints: pyzmq's flags are enums, and ``int & enum`` builds an enum member per test.
_POLLIN, _NOBLOCK, _EVENTS = int(zmq.POLLIN), int(zmq.NOBLOCK), int(zmq.EVENTS)
_MORE_NOBLOCK = int(zmq.SNDMORE) | _NOBLOCK


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
        insecure_plaintext: bool = False,
    ) -> None:
        self.endpoint = endpoint
        self.insecure_plaintext = insecure_plaintext  # plain zmq: asked for, and warned about
        self._secret = secret
        self._authenticator: AsyncioAuthenticator | None = None
        self.store = store
        self.publish = publish
        self.stats = RelayStats()
        self._registry = AgentRegistry(
            secret=secret,
            dashboard_url=dashboard_url,
            store=store,
            publish=publish,
            send=self._send,
            stats=self.stats,
            agent_timeout=agent_timeout,
            on_gone=self._agent_gone,
        )
        store.held_reports = self._registry.held  # retention keeps reports with held frames
        self._reports = ReportIntake(
            store=store,
            publish=publish,
            stats=self.stats,
            registry=self._registry,
            send_now=self._send_now,
        )
        # Evals, completions, interrupts, lookups, releases and resumes: the HTTP side asks
        # this part directly (``relay.requests.evaluate(...)``).
        self.requests = Requests(
            registry=self._registry,
            send=self._send,
            send_now=self._send_now,
            in_background=self._in_background,
            eval_timeout=eval_timeout,
        )
        # Breakpoints set from the dashboard: each agent gets its list after each welcome.
        self.breakpoints = BreakpointBook(
            store=store, publish=publish, send=self._send, agents=self._registry.agents
        )
        self._context = zmq.asyncio.Context()  # its sockets are asyncio ones (the monitor)
        # The ROUTER itself is a plain socket read by ``_on_readable``: answers to evals are
        # handed over in the same loop turn they arrive in, without pyzmq's future chain.
        self._socket: zmq.Socket[bytes] = zmq.Socket(self._context, zmq.ROUTER)
        self._inbox: deque[tuple[bytes, Received]] = deque()  # in order
        self._inbox_ready = asyncio.Event()
        self._reader_fd: int | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()  # started by timers (probes)
        self._watch = ConnectionWatch(
            insecure_plaintext=insecure_plaintext,
            registry=self._registry,
            stats=self.stats,
            deliver=self._deliver,
            after_sends=self._on_readable,
            in_background=self._in_background,
        )
        self.bound_endpoint = ""

    # --- what the HTTP side reads and asks ----------------------------------------------

    @property
    def agents(self) -> dict[str, AgentState]:
        """The agents known, by agent id (alive or gone)."""
        return self._registry.agents

    @property
    def paused(self) -> dict[str, str]:
        """Report id -> agent id, threads held at ``breakpoint()``."""
        return self._registry.paused

    @property
    def held(self) -> dict[str, str]:
        """Report id -> agent id, whose frames are held."""
        return self._registry.held

    @property
    def released_at(self) -> OrderedDict[str, float]:
        """When the broker learnt that a report's frames were released (the latest ones)."""
        return self._registry.released_at

    def frames_held(self, report_id: str, agent_id: str) -> bool:
        """Whether the live agent ``agent_id`` (the report's own) still holds its frames."""
        return self._registry.frames_held(report_id, agent_id)

    async def resume(
        self, report_id: str, step: protocol.Step | None = None, *, driver: str = ""
    ) -> None:
        """Let the thread paused in ``report_id`` go on, or take ``step`` (by ``driver``, whom
        ``step_driver`` names then); ``EvalFailure``."""
        agent_id = self._registry.paused.get(report_id, "")
        await self.requests.resume(report_id, step)
        if step is not None:
            self._registry.note_step(report_id, driver, agent_id)

    def step_driver(self, report_id: str) -> str | None:
        """Who took the step from paused report ``report_id`` (None: nobody known)."""
        known = self._registry.steps.get(report_id)
        return known[0] if known else None

    def step_next(self, report_id: str) -> str | None:
        """The paused report of the stop a step from ``report_id`` led to (None: not yet)."""
        return self._registry.step_next.get(report_id)

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the socket, load known agents (all gone until they say hello) and start."""
        sock = self._socket
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        # Slightly above the cap, so a message just over it is read, dropped and counted;
        # zmq cuts the connection of anything bigger before buffering it.
        sock.setsockopt(zmq.MAXMSGSIZE, protocol.MAX_MESSAGE_BYTES + _SIZE_SLACK)
        if not self.insecure_plaintext:
            # ZAP: libzmq asks the handler bound on this context about each CurveZMQ client.
            self._authenticator = AsyncioAuthenticator(
                self._context, log=logging.getLogger("debugbroker.zap")
            )
            self._authenticator.start()
            check = KeyCheck(self._secret)
            self._authenticator.configure_curve_callback("*", credentials_provider=check)
            sock.curve_server = True
            sock.curve_secretkey = keys.server_secret_key(self._secret).encode("ascii")
        monitor = sock.get_monitor_socket(WATCHED_EVENTS)
        assert isinstance(monitor, zmq.asyncio.Socket)  # made by the asyncio context
        sock.bind(self.endpoint)
        self.bound_endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        reader_fd = int(sock.getsockopt(zmq.FD))
        asyncio.get_running_loop().add_reader(reader_fd, self._on_readable)
        self._reader_fd = reader_fd
        await self._registry.load()
        await self.breakpoints.load()
        self._tasks = [
            asyncio.create_task(self._receive_loop(), name="debugbroker-relay"),
            asyncio.create_task(self._registry.liveness_loop(), name="debugbroker-liveness"),
            asyncio.create_task(self._watch.run(monitor), name="debugbroker-handshakes"),
        ]

    async def stop(self) -> None:
        """Stop the loops and close the socket."""
        self._watch.stop()
        publisher = self._reports.stop()
        if publisher is not None:
            self._tasks.append(publisher)  # cancelled with the loops
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
        self.requests.fail(EvalFailure(STOPPING, "the broker is shutting down"))
        try:
            self._socket.disable_monitor()
        except zmq.ZMQError:
            pass
        self._socket.close(linger=0)
        if self._authenticator is not None:
            self._authenticator.stop()
        self._context.term()

    # --- receiving ----------------------------------------------------------------------

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
                if parsed is None:
                    continue
                identity, message = parsed
                if isinstance(message, ANSWERS) and self.requests.answered(identity, message):
                    continue
                self._inbox.append(parsed)
                self._inbox_ready.set()
        except zmq.Again:
            pass
        except zmq.ZMQError:  # closed: the relay is stopping
            pass

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
            if worth_logging(self.stats.oversized):
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
            if worth_logging(self.stats.malformed):
                log.warning(
                    "dropped a malformed message (%d so far): %.300s", self.stats.malformed, error
                )
            return None
        return identity, message

    async def _receive(self, identity: bytes, message: Received) -> None:
        """Hand one message to its part: a hello to admission, anything else only from an
        admitted agent (the others get a hello request)."""
        agent_id = identity.decode("utf-8", "replace")
        if isinstance(message, Hello):
            if await self._registry.hello(identity, agent_id, message):
                admitted = self.agents[agent_id]  # after its welcome: its breakpoints
                await self.breakpoints.send_to(admitted, holds=message.breakpoints)
            return
        agent = self.agents.get(agent_id)
        if agent is None or not agent.alive:
            # Not admitted (or forgotten by a restart): ask for a hello, which proves the secret.
            self.stats.unadmitted += 1
            await self._send(identity, HelloRequest())
            return
        agent.last_seen = time.time()
        if isinstance(message, Heartbeat):
            await self._registry.heartbeat(agent, message)
        elif isinstance(message, WireReport):
            await self._reports.receive(identity, agent, message)
        elif isinstance(message, protocol.Resumed):
            await self._registry.resumed(agent, message)
        elif isinstance(message, protocol.Repeats):
            self._reports.repeats(agent, message)
        elif isinstance(message, protocol.Released):
            ids = message.report_ids[: protocol.MAX_HELD_IDS]
            await self._registry.frames_released(agent.agent_id, ids)
        elif isinstance(message, protocol.BreakpointStates):
            await self.breakpoints.states_received(agent, message)
        elif isinstance(message, protocol.Bye):
            # the process exits: gone now, not later
            await self._registry.mark_gone(agent, message.reason or "it exited")
        elif isinstance(message, ANSWERS):
            self.requests.resolve(agent, message)
        else:
            self.stats.unexpected += 1

    # --- sending ------------------------------------------------------------------------

    async def _send(self, identity: bytes, message: Message) -> bool:
        """Send to one agent; False when its connection is gone (``ROUTER_MANDATORY``)."""
        return self._send_now(identity, message)

    def _send_now(self, identity: bytes, message: Message) -> bool:
        """``_send`` from a callback: the send itself never waits."""
        try:
            return not self._deliver(identity, encoder.encode(message))
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

    # --- between the parts --------------------------------------------------------------

    def _agent_gone(self, agent: AgentState) -> None:
        """The agent was marked gone: the requests waiting on it fail with a 410."""
        self.requests.fail(EvalFailure(GONE, gone_message(agent)), agent.agent_id)
        self._in_background(self.breakpoints.agent_gone(agent))

    def _in_background(self, work: Awaitable[None]) -> None:
        """Run ``work`` as a task the relay keeps until it ends (errors are logged)."""
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a relay task failed", exc_info=task.exception())
