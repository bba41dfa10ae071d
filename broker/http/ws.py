"""The live event stream: one WebSocket per dashboard tab, every event fanned out to all.

A slow tab must not hold up the others or grow the broker's memory: each client has a
bounded queue drained by its own task, and a client whose queue is full is disconnected
(the dashboard reconnects and refetches what it missed).

Presence: a tab may tell where it is (``{"type": "presence", "name", "report", "frame"}``);
the broker names each tab with an id it chooses (sent to that tab alone as ``welcome``, in
answer to its first presence message) and sends everyone the list of viewers whenever it
changes. A client that never sends presence never hears a welcome.

Typing: a tab that has said where it is may say it is typing in a console
(``{"type": "typing", "console": "reports/{id}/frames/{n}" | "agents/{id}", "active": bool}``);
the broker relays it to the other tabs with the name and id it knows for that tab (never a name
the typing message carries), at most one notice per tab every ``TYPING_INTERVAL`` seconds
(an ``active: false`` always passes). The dashboard forgets a notice after a few seconds.

Console commands: a tab runs evals and completions over this socket instead of one HTTP
request each (``{"type": "eval", "id": n, "console": "reports/{id}/frames/{n}" |
"agents/{id}", "code", "interactive", "name"}`` and ``{"type": "complete", "id": n, "console",
"text"}``), answered to that tab alone as ``{"type": "answer", "id": n, "status", "body"}``,
``status`` and ``body`` being what the HTTP route answers (the same code runs both). The
cookie alone runs nothing: a socket opened with the session cookie must first prove the
session's key (``{"type": "auth", "key"}``, answered ``{"type": "auth", "ok", "error"?}``),
as every state-changing HTTP request does with its header, and commands before that are
refused (403). A socket opened with a Bearer token has proved its credential already. The
session is checked again on each command (a logout ends what its sockets may do).

While a tab's command runs, the events for that tab are held back (at most
``HOLD_SECONDS``) and sent with the command's answer, in order, before it, in one TCP
segment: a quick eval's ``running`` and ``done`` entries and its answer wake the tab once,
not three times, and the tab does not take CPU from the agent in the middle of the eval. A
slow eval's events reach its tab ``HOLD_SECONDS`` late; the other tabs get every event at once.

Nothing a tab sends is trusted:
messages are small, typed and validated field by field, rate-limited, and a tab that keeps
sending garbage is disconnected. Invalid messages are dropped and counted, never fatal.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
import socket as sockets
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from debugbroker.broker.http.auth import ROLE_KEY, SESSION_KEY, AccessPolicy, Caller, Session
from debugbroker.broker.render.masking import mask_for_viewer
from debugbroker.broker.wire import wire_json

__all__ = [
    "EventHub",
    "Viewer",
    "parse_presence",
    "parse_typing",
    "parse_command",
    "ConsoleCommand",
    "MAX_COMMAND_BYTES",
    "MAX_NAME_CHARS",
    "TYPING_INTERVAL",
    "HOLD_SECONDS",
]

log = logging.getLogger("debugbroker.ws")
_QUEUE_SIZE = 1_000
_MAX_INCOMING = 2 * 1024  # presence and typing are tiny: a larger one closes the socket
# An eval's code is at most 100,000 characters (the HTTP route's limit), up to 4 bytes each
# in UTF-8 and 6 as a JSON escape; a larger message closes the socket too.
MAX_COMMAND_BYTES = 6 * 100_000 + 4096
_MAX_IN_FLIGHT = 16  # commands of one tab running at once; more are refused (429)
_MAX_COMMAND_ID = 2**53  # a JSON number every browser keeps exactly
# The console's own code, called for a proven tab's command: (caller, message) -> (status, JSON).
ConsoleCommand = Callable[[Caller, dict[str, Any]], Awaitable[tuple[int, str]]]
MAX_NAME_CHARS = 40
_MAX_VIEWERS = 200  # listed in presence events; more tabs still connect, unlisted
_MAX_FRAME_INDEX = 1_000_000
_REPORT_ID = re.compile(r"[A-Za-z0-9_.-]{1,128}")
_CONSOLE = re.compile(
    r"reports/[A-Za-z0-9_.-]{1,128}/frames/[0-9]{1,7}|agents/[A-Za-z0-9_.-]{1,128}"
)
# Typing notices of one tab closer together than this are not relayed (the tab sends fewer).
TYPING_INTERVAL = 0.5
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")
# Per tab: a burst of 20 messages, then 5 per second; past 100 rejected ones it is closed.
_RATE_BURST = 20.0
_RATE_PER_SECOND = 5.0
_MAX_REJECTED = 100
# How long the events for a tab wait for the answer of the command it is running.
HOLD_SECONDS = 0.05
_MAX_HELD = 100  # events held for one tab; past that they go to its queue at once
_TCP_CORK: int | None = getattr(sockets, "TCP_CORK", None)  # Linux


@dataclass(frozen=True, slots=True)
class Viewer:
    """Where one dashboard tab is: its broker-given id, the name it gave, report and frame."""

    id: str
    name: str
    report: str | None
    frame: int | None
    since: float

    def to_json(self) -> dict[str, Any]:
        """The viewer as the presence event lists it."""
        return {
            "id": self.id,
            "name": self.name,
            "report": self.report,
            "frame": self.frame,
            "since": self.since,
        }


def parse_presence(text: str) -> tuple[str, str | None, int | None] | None:
    """``(name, report, frame)`` from a tab's presence message, or None when it is invalid."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("type") != "presence":
        return None
    name, report, frame = data.get("name", ""), data.get("report"), data.get("frame")
    if not isinstance(name, str) or len(name) > 1_000:
        return None
    name = _CONTROL.sub("", name).strip()[:MAX_NAME_CHARS] or "anonymous"
    if report is not None and (not isinstance(report, str) or not _REPORT_ID.fullmatch(report)):
        return None
    if frame is not None:
        if isinstance(frame, bool) or not isinstance(frame, int) or report is None:
            return None
        if not 0 <= frame <= _MAX_FRAME_INDEX:
            return None
    return name, report, frame


def parse_command(text: str) -> dict[str, Any] | None:
    """A tab's ``auth``, ``eval`` or ``complete`` message, or None when it is none of them.

    Only the envelope is checked here (``type``, and an integer ``id`` for commands); the
    fields of a command are checked by the console, as those of an HTTP body are.
    """
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    kind = data.get("type")
    if kind == "auth":
        return data if isinstance(data.get("key"), str) else None
    if kind not in ("eval", "complete"):
        return None
    number = data.get("id")
    if isinstance(number, bool) or not isinstance(number, int):
        return None
    return data if 0 <= number < _MAX_COMMAND_ID else None


def parse_typing(text: str) -> tuple[str, bool] | None:
    """``(console, active)`` from a tab's typing message, or None when it is not one or invalid."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("type") != "typing" or len(data) > 3:
        return None
    console, active = data.get("console"), data.get("active", True)
    if not isinstance(console, str) or not _CONSOLE.fullmatch(console):
        return None
    if not isinstance(active, bool):
        return None
    return console, active


class _Client:
    __slots__ = (
        "socket",
        "queue",
        "task",
        "viewer",
        "allowance",
        "checked",
        "rejected",
        "typed",
        "role",
        "session",
        "proven",
        "client",
        "in_flight",
        "corkable",
        "held",
        "release",
    )

    def __init__(
        self,
        socket: web.WebSocketResponse,
        role: str = "full",
        session: Session | None = None,
        client: str = "",
        corkable: Any = None,
    ) -> None:
        self.socket = socket
        # The connection's socket (asyncio's ``TransportSocket``), to send a command's
        # answer and the events queued with it as one TCP segment; None: each by itself.
        self.corkable = corkable
        self.held: list[str] = []  # events held while a command of this tab runs, in order
        self.release: asyncio.TimerHandle | None = None  # queues them at HOLD_SECONDS
        self.role = role  # "view": console entries reach it with secrets masked
        self.session = session  # opened with the cookie: commands wait for its key
        self.proven = session is None  # a Bearer token proved itself at the handshake
        self.client = client
        self.in_flight: set[asyncio.Task[None]] = set()
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(_QUEUE_SIZE)
        self.task: asyncio.Task[None] | None = None
        self.viewer: Viewer | None = None
        self.allowance = _RATE_BURST
        self.checked = time.monotonic()
        self.rejected = 0
        self.typed = 0.0  # when this tab's last typing notice was relayed (monotonic)

    def fall_behind(self) -> None:
        """Drop what waits for this tab and queue the close: the tab refetches what it
        missed. The queue is emptied first, so the close always gets in (queued into a
        full queue it was lost, and the tab stayed connected without events)."""
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)

    def take_waiting(self) -> list[str]:
        """The events waiting for this tab, in order (queued, then held), taken out; a
        close waiting in the queue stays there, for the send loop."""
        texts = []
        while not self.queue.empty():
            text = self.queue.get_nowait()
            if text is None:  # fall_behind emptied the queue first: it is alone
                self.queue.put_nowait(None)
                return []
            texts.append(text)
        texts += self.held
        self.held = []
        if self.release is not None:
            self.release.cancel()
            self.release = None
        return texts

    @contextlib.contextmanager
    def corked(self) -> Iterator[None]:
        """Hold back what is written meanwhile and send it together at the end (Linux's
        ``TCP_CORK``): one segment, so the tab wakes once for all of it."""
        corkable = self.corkable
        if corkable is None or _TCP_CORK is None:
            yield
            return
        try:
            corkable.setsockopt(sockets.IPPROTO_TCP, _TCP_CORK, 1)
        except OSError:  # closed meanwhile: sends fail on their own
            yield
            return
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                corkable.setsockopt(sockets.IPPROTO_TCP, _TCP_CORK, 0)

    def within_rate(self) -> bool:
        """Token bucket: whether this message may be handled."""
        now = time.monotonic()
        self.allowance = min(_RATE_BURST, self.allowance + (now - self.checked) * _RATE_PER_SECOND)
        self.checked = now
        if self.allowance < 1.0:
            return False
        self.allowance -= 1.0
        return True


def _answer_text(number: int, status: int, body: str) -> str:
    """A command's answer: ``body`` is JSON text already (the console's answer)."""
    return f'{{"type":"answer","id":{number},"status":{status},"body":{body}}}'


class EventHub:
    """The connected dashboards and the fan-out of events to them."""

    def __init__(self, policy: AccessPolicy | None = None) -> None:
        self._clients: set[_Client] = set()
        self.rejected_messages = 0
        self.policy = policy  # to check a tab's session on each command
        self.commands: ConsoleCommand | None = None  # set once the console's routes exist

    @property
    def viewers(self) -> list[Viewer]:
        """The tabs that told where they are, longest-present first."""
        found = [client.viewer for client in self._clients if client.viewer is not None]
        return sorted(found, key=lambda viewer: (viewer.since, viewer.id))[:_MAX_VIEWERS]

    @property
    def client_count(self) -> int:
        """How many dashboards are connected."""
        return len(self._clients)

    async def publish(self, event: dict[str, Any]) -> None:
        """Queue ``event`` for every connected dashboard; never waits on a client."""
        if not self._clients:
            return
        text = wire_json(event)
        masked: str | None = None
        for client in list(self._clients):
            payload = text
            if client.role != "full" and event.get("type") == "console":
                if masked is None:  # from the JSON: entries hold tuples and structs too
                    masked = wire_json(mask_for_viewer(json.loads(text)))
                payload = masked
            if client.in_flight:  # sent with its command's answer (or at HOLD_SECONDS)
                self._hold(client, payload)
            else:
                self._queue(client, payload)

    def _queue(self, client: _Client, payload: str) -> bool:
        """Queue ``payload`` for the tab; False when its queue is full (it is dropped from
        the fan-out and told to reconnect)."""
        try:
            client.queue.put_nowait(payload)
        except asyncio.QueueFull:
            log.warning("a dashboard fell behind; disconnecting it so it resyncs")
            self._clients.discard(client)
            client.fall_behind()
            return False
        return True

    def _hold(self, client: _Client, payload: str) -> None:
        client.held.append(payload)
        if len(client.held) >= _MAX_HELD:
            self._release(client)
        elif client.release is None:
            loop = asyncio.get_running_loop()
            client.release = loop.call_later(HOLD_SECONDS, self._release, client)

    def _release(self, client: _Client) -> None:
        """The command runs on: what was held for its tab goes to the send loop."""
        if client.release is not None:
            client.release.cancel()
            client.release = None
        held, client.held = client.held, []
        for payload in held:
            if not self._queue(client, payload):
                return

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """``GET /api/ws``: the event stream (authenticated by the security middleware)."""
        socket = web.WebSocketResponse(heartbeat=20.0, max_msg_size=MAX_COMMAND_BYTES)
        await socket.prepare(request)
        session = request.get(SESSION_KEY)
        transport = request.transport
        corkable = transport.get_extra_info("socket") if transport is not None else None
        role = request.get(ROLE_KEY, "view")
        client = _Client(socket, role, session, request.remote or "", corkable)
        client.task = asyncio.create_task(self._send_loop(client))
        self._clients.add(client)
        viewer_id = secrets.token_hex(6)
        try:
            async for message in socket:
                if message.type == WSMsgType.ERROR:
                    break
                text = message.data if message.type == WSMsgType.TEXT else None
                command = parse_command(text) if text is not None else None
                if command is not None and self._command(client, command):
                    continue
                if command is None and text is not None and len(text) > _MAX_INCOMING:
                    await socket.close(code=WSCloseCode.MESSAGE_TOO_BIG, message=b"too big")
                    break
                if (
                    command is None
                    and text is not None
                    and await self._receive(client, viewer_id, text)
                ):
                    continue
                self.rejected_messages += 1
                client.rejected += 1
                if client.rejected > _MAX_REJECTED:
                    await socket.close(code=1008, message=b"too many invalid messages")
                    break
        finally:
            self._clients.discard(client)
            if client.release is not None:
                client.release.cancel()
            # Commands still running finish (their transcript entries and audit rows end as
            # over HTTP, where a closed connection does not cancel an eval); their answers
            # have nowhere to go.
            client.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await client.task
            if client.viewer is not None:
                await self.publish(self._presence_event())
        return socket

    async def _receive(self, client: _Client, viewer_id: str, text: str) -> bool:
        """Handle one message from a tab; False when it was dropped (invalid or too fast)."""
        if not client.within_rate():
            return False
        parsed = parse_presence(text)
        if parsed is None:
            typing = parse_typing(text)
            return typing is not None and await self._typing(client, *typing)
        name, report, frame = parsed
        previous = client.viewer
        if previous is not None and (previous.name, previous.report, previous.frame) == parsed:
            return True
        if previous is None:  # a tab's first presence: tell it its id (before the list)
            self._send_one(client, {"type": "welcome", "viewer": viewer_id})
        since = previous.since if previous is not None else time.time()
        client.viewer = Viewer(viewer_id, name, report, frame, since)
        await self.publish(self._presence_event())
        return True

    async def _typing(self, client: _Client, console: str, active: bool) -> bool:
        """Relay a typing notice to the other tabs; False when the tab never said who it is."""
        viewer = client.viewer
        if viewer is None:
            return False
        now = time.monotonic()
        if active and now - client.typed < TYPING_INTERVAL:
            return True  # valid, just too soon to relay again
        client.typed = now if active else 0.0
        event = {
            "type": "typing",
            "viewer": viewer.id,
            "name": viewer.name,
            "console": console,
            "active": active,
        }
        text = wire_json(event)
        for other in list(self._clients):
            if other is not client:
                with contextlib.suppress(asyncio.QueueFull):
                    other.queue.put_nowait(text)
        return True

    def _command(self, client: _Client, message: dict[str, Any]) -> bool:
        """Start a tab's command (or take its key); its answer goes to that tab alone. False
        for a wrong key or one sent too fast: counted like an invalid message (past
        ``_MAX_REJECTED`` the socket is closed), and rate-limited like presence."""
        if message["type"] == "auth":
            return client.within_rate() and self._authenticate(client, message["key"])
        number = message["id"]
        if not client.proven:
            error = (
                'this socket has not proved the session: send {"type": "auth", "key": ...} '
                "first (the cookie alone runs nothing)"
            )
            self._answer(client, number, 403, wire_json({"error": error}))
            return True
        if client.session is not None and (
            self.policy is None or not self.policy.session_live(client.session)
        ):
            client.proven = False
            self._answer(client, number, 401, wire_json({"error": "the session has ended"}))
            return True
        if self.commands is None or len(client.in_flight) >= _MAX_IN_FLIGHT:
            error = "too many console commands at once on this socket; wait for their answers"
            self._answer(client, number, 429, wire_json({"error": error}))
            return True
        caller = Caller("full" if client.role == "full" else "view", "", client.client)
        task = asyncio.create_task(self._run_command(client, caller, number, message))
        client.in_flight.add(task)
        task.add_done_callback(client.in_flight.discard)
        return True

    def _authenticate(self, client: _Client, key: str) -> bool:
        session = client.session
        if session is None:  # Bearer: nothing to prove
            ok = True
        else:
            ok = self.policy is not None and self.policy.session_live(session)
            ok = ok and session.key_matches(key)
        client.proven = ok
        answer: dict[str, Any] = {"type": "auth", "ok": ok, "role": client.role}
        if not ok:
            answer["error"] = "that is not this session's key: log in again in this tab"
        self._send_one(client, answer)
        return ok

    async def _run_command(
        self, client: _Client, caller: Caller, number: int, message: dict[str, Any]
    ) -> None:
        assert self.commands is not None
        try:
            status, body = await self.commands(caller, message)
        except Exception:
            log.exception("a console command over the WebSocket failed")
            status, body = 500, wire_json({"error": "internal error in the broker; see its log"})
        # Sent now, not through the send loop's queue (a loop turn), after the events waiting
        # for this tab (an eval's "running" and "done" entries), in one TCP segment: the tab
        # wakes once for all of them; the send loop sends what comes later. The tab merges
        # entries and answers by id.
        if client.socket.closed:
            return
        waiting = client.take_waiting()
        with contextlib.suppress(ConnectionError, RuntimeError):
            if not waiting:  # a completion: nothing to send with it, no cork to set
                await client.socket.send_str(_answer_text(number, status, body))
                return
            with client.corked():
                for text in waiting:
                    await client.socket.send_str(text)
                await client.socket.send_str(_answer_text(number, status, body))

    def _answer(self, client: _Client, number: int, status: int, body: str) -> None:
        """Queue a command's answer for the tab (refusals; results are sent at once)."""
        with contextlib.suppress(asyncio.QueueFull):
            client.queue.put_nowait(_answer_text(number, status, body))

    def _presence_event(self) -> dict[str, Any]:
        return {"type": "presence", "viewers": [viewer.to_json() for viewer in self.viewers]}

    def _send_one(self, client: _Client, event: dict[str, Any]) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            client.queue.put_nowait(wire_json(event))

    async def _send_loop(self, client: _Client) -> None:
        while True:
            text = await client.queue.get()
            if text is None:
                await client.socket.close(message=b"too slow; reconnect")
                return
            try:
                await client.socket.send_str(text)
            except (ConnectionError, RuntimeError):
                return

    async def close(self) -> None:
        """Close every dashboard connection (broker shutdown)."""
        for client in list(self._clients):
            with contextlib.suppress(Exception):
                await client.socket.close(message=b"broker shutting down")
        self._clients.clear()
