"""The ROUTER's connections: who may connect (``KeyCheck``, the ZAP handler's rule), and
what its monitor socket says (``ConnectionWatch``): failed handshakes are counted, logged
and audited with their likely cause, and a closed connection gets the live agents probed,
so that a killed worker is marked gone at once instead of after the heartbeat timeout."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable

import zmq
import zmq.asyncio
from zmq.utils.monitor import parse_monitor_message

from debugbroker.broker.relay.agents import AgentRegistry
from debugbroker.broker.relay.stats import RelayStats
from debugbroker.protocol import Ping, encoder, keys

__all__ = ["WATCHED_EVENTS", "ConnectionWatch", "KeyCheck"]

log = logging.getLogger("debugbroker.relay")
WATCHED_EVENTS = (
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_DISCONNECTED
)
# After a connection closes (a worker SIGKILLed, say), the live agents are probed this many
# seconds later: the one whose connection it was is gone from the ROUTER, so it is marked
# gone at once instead of after the heartbeat timeout. Later probes cover a ROUTER that
# drops the connection's identity a little after the event.
_DISCONNECT_PROBES = (0.05, 0.5, 2.0)


class KeyCheck:
    """The ZAP rule of the relay's CurveZMQ server: admit the agents' client key only.

    That key is derived from the shared secret (``protocol.keys``) and the handshake proves
    the client holds its secret half, so a peer without the secret gets no message through.
    """

    def __init__(self, secret: str) -> None:
        self._allowed = zmq.curve_public(keys.client_secret_key(secret).encode("ascii"))

    def callback(self, domain: str, key: bytes) -> bool:
        """Whether the client with public key ``key`` (Z85) may connect (pyzmq's provider)."""
        return hmac.compare_digest(key, self._allowed)


def _handshake_failure(event: int, value: int, insecure_plaintext: bool) -> str:
    """The likely cause of a failed handshake, for the log and the audit."""
    if value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH and insecure_plaintext:
        return (
            "an agent that encrypts its link (the default) reached this broker, which runs "
            "with --insecure-plaintext"
        )
    if insecure_plaintext:  # the agent saw the mismatch first and closed: no detail here
        return (
            "the peer closed during the handshake: most likely an agent that encrypts its "
            "link (the default) reached this broker, which runs with --insecure-plaintext"
        )
    if value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
        return (
            "a peer without encryption: an agent of protocol 1 (debugbroker before the "
            "encrypted link, which sends DEBUGBROKER_SECRET itself: upgrade it), an agent "
            "with DEBUGBROKER_INSECURE_PLAINTEXT set, or not a debugbroker agent"
        )
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        return "a CurveZMQ client whose key is not derived from DEBUGBROKER_SECRET"
    return (  # (a plain-zmq peer may close first, with no detail: it is listed too)
        "the CurveZMQ handshake failed: an agent with another DEBUGBROKER_SECRET, a peer "
        "without encryption (an agent of protocol 1, which sends DEBUGBROKER_SECRET itself: "
        "upgrade it; or one with DEBUGBROKER_INSECURE_PLAINTEXT set), or not a debugbroker agent"
    )


class ConnectionWatch:
    """Reads the ROUTER's monitor events (``WATCHED_EVENTS``) and probes after closes.

    ``deliver`` sends a payload to an identity without waiting (0, or the errno);
    ``after_sends`` reads the ROUTER again (a send may take the edge that said a message
    arrived); ``in_background`` runs what a timer cannot await (marking an agent gone).
    """

    def __init__(
        self,
        *,
        insecure_plaintext: bool,
        registry: AgentRegistry,
        stats: RelayStats,
        deliver: Callable[[bytes, bytes], int],
        after_sends: Callable[[], None],
        in_background: Callable[[Awaitable[None]], None],
    ) -> None:
        self.stats = stats
        self._insecure_plaintext = insecure_plaintext
        self._registry = registry
        self._deliver = deliver
        self._after_sends = after_sends
        self._in_background = in_background
        self._stopped = False
        self._disconnect_probed = -1e9  # loop time the last disconnect probes were scheduled

    def stop(self) -> None:
        """Probe no more (probes already scheduled do nothing)."""
        self._stopped = True

    async def run(self, monitor: zmq.asyncio.Socket) -> None:
        """Count, log and audit connections that fail the handshake (another secret, say),
        and probe the agents when a connection closes."""
        try:
            while True:
                event = parse_monitor_message(await monitor.recv_multipart())
                if event["event"] == zmq.EVENT_DISCONNECTED:
                    self._probe_after_disconnect()
                    continue
                self.stats.handshake_failed += 1
                why = _handshake_failure(event["event"], event["value"], self._insecure_plaintext)
                detail = f"{why} ({zmq.Event(event['event']).name})"
                await self._registry.note_refusal("", detail, self.stats.handshake_failed)
        finally:
            monitor.close(linger=0)

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
        ping = encoder.encode(Ping())
        for agent in list(self._registry.agents.values()):
            if not agent.alive:
                continue
            if self._deliver(agent.agent_id.encode(), ping) == zmq.EHOSTUNREACH:
                # (EAGAIN: the connection is there, only busy)
                self._in_background(self._registry.mark_gone(agent, "its connection closed"))
        self._after_sends()  # a send may take the edge that said a message arrived
