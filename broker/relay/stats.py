"""What the relay counts of what it refused or dropped, and when it says so in the log."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["RelayStats", "worth_logging"]

_LOUD_EVENTS = 20  # log (and audit) the first refusals in full, then every 100th


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
    # Errors agents counted, not captured (``protocol.Repeats``): added to their report's
    # group, or of a report this broker does not know (not received since it started).
    repeats_counted: int = 0
    repeats_unknown: int = 0
    extra: dict[str, int] = field(default_factory=dict)


def worth_logging(count: int) -> bool:
    """Whether the ``count``-th event of a kind is logged: a flood must not flood the log."""
    return count <= _LOUD_EVENTS or count % 100 == 0
