"""Agent configuration: one frozen keyword-only record, filled from arguments and environment."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

__all__ = [
    "Options",
    "middleware_options",
    "DEFAULT_BROKER_URL",
    "DEFAULT_DASHBOARD_URL",
    "DEFAULT_SECRET_NAMES",
    "default_data_dir",
    "environment_flag",
]

DEFAULT_BROKER_URL = "tcp://127.0.0.1:8781"
DEFAULT_DASHBOARD_URL = "http://127.0.0.1:8780"


# Like Django's SafeExceptionReporterFilter: names that look like credentials. Searched
# case-insensitively in the name with its camelCase humps split by "_" (``apiKey`` is
# searched as ``api_Key``). Short words that are often part of innocent names are matched
# as whole word parts only (``(?<![a-z0-9])pin(?![a-z0-9])``: ``pin``, ``user_pin``, ``PIN``
# but not ``spinner``), and ``key`` only as the whole name (``cache_key``, ``sort_key`` and
# ``key_func`` are no credentials; ``api_key``, ``access-key``, ``private_key`` are).
DEFAULT_SECRET_NAMES: tuple[str, ...] = (
    "passw",
    "passphrase",
    "pwd",
    "secret",
    "token",
    "api[_-]?key",
    "access[_-]?key",
    "private[_-]?key",
    "signature",
    "authoriz",
    "(?:^|[_.-])o?auth(?:$|[_.-])",
    "cookie",
    "session",
    "csrf",
    "credential",
    "^key$",
    "(?<![a-z0-9])pass(?![a-z0-9])",
    "(?<![a-z0-9])pin(?![a-z0-9])",
    "(?<![a-z0-9])card(?![a-z0-9])",
)


def default_data_dir() -> Path:
    """Where the broker keeps its SQLite file, token and agent secret (``DEBUGBROKER_DATA``)."""
    configured = os.environ.get("DEBUGBROKER_DATA")
    return Path(configured).expanduser() if configured else Path.home() / ".debugbroker"


def _read_local_secret() -> str:
    """The secret a local broker wrote to its data dir, so same-user setups need no config."""
    try:
        return (default_data_dir() / "secret").read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def environment_flag(name: str) -> bool:
    """Whether the environment variable ``name`` is set to a true value (1, true, yes, on)."""
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _positive_number(name: str, default: float, *, zero: bool = False) -> float:
    """A positive number (or 0, with ``zero``) from the environment variable ``name``; bad
    text warns, keeps default.

    A typo in a debugging aid's setting must not stop the app: the agent says what it
    ignored on stderr and goes on with the default.
    """
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (value > 0 or (zero and value == 0)) or value == float("inf"):
        expected = "a number >= 0" if zero else "a positive number"
        print(
            f"debugbroker: ignoring {name}={text[:40]!r}: expected {expected}; using {default:g}",
            file=sys.stderr,
            flush=True,
        )
        return default
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    """Everything the agent can be told; defaults follow Werkzeug's debugger where it has one."""

    broker_url: str = DEFAULT_BROKER_URL
    secret: str = field(default="", repr=False)  # never in a repr: locals reach reports
    dashboard_url: str = DEFAULT_DASHBOARD_URL
    app_name: str = ""
    evalex: bool = True
    # The link to the broker is CurveZMQ with keys derived from ``secret`` (protocol/keys.py).
    # True (``DEBUGBROKER_INSECURE_PLAINTEXT=1``, for a broker run with --insecure-plaintext):
    # plain zmq, readable on the network, and the broker is not known before its welcome.
    insecure_plaintext: bool = False
    # Values whose names match one of these patterns (regular expressions, searched case-
    # insensitively) are masked in locals, dict keys, pairs, fields, headers, cookies, query,
    # form and environ, and as ``name=value`` parameters inside any text (docs/limits.md).
    secret_names: tuple[str, ...] = DEFAULT_SECRET_NAMES
    # Capture caps: the request thread's cost and the report's size stay bounded.
    max_frames: int = 100  # frames per exception (the innermost are kept)
    max_locals: int = 50  # variables per frame
    context_lines: int = 5  # source lines each side of the failing line
    repr_string: int = 70  # characters of a string before it is cut
    repr_items: int = 8  # items of a list, tuple or set before it is cut
    repr_pairs: int = 4  # pairs of a dict before it is cut
    repr_depth: int = 4  # nesting levels shown
    repr_text: int = 2_000  # characters of any object's own repr
    repr_budget_seconds: float = 0.05  # time for one frame's locals before the rest is skipped
    # Held frames: bounded, least recently used released first (DEBUGBROKER_HELD_REPORTS,
    # DEBUGBROKER_HELD_MB).
    held_reports: int = 64
    held_bytes: int = 32 * 1024 * 1024
    # Transport.
    queue_size: int = 256  # reports waiting for the broker; more are counted as dropped
    heartbeat_seconds: float = 2.0
    eval_timeout_seconds: float = 30.0  # 0: no limit; past it the eval is interrupted
    console: bool = False  # offer a console on the live process (no error needed)
    # The storm policy (agent/transport/repeats.py, docs/limits.md): per failing path (same
    # exception types, code and lines) and process, ``repeat_burst`` full reports at once and
    # ``repeat_per_second`` more each second; past that an error is counted against the last
    # full report, not captured (no locals, no held frames). 0: every error captured.
    # 20 at once covers a developer reloading a failing page and tests that raise one error
    # a few dozen times; 2 a second more is more full reports of one error than anyone reads.
    # (DEBUGBROKER_REPEAT_BURST, DEBUGBROKER_REPEAT_RATE.)
    repeat_burst: int = 20
    repeat_per_second: float = 2.0

    @classmethod
    def from_environment(cls, **overrides: object) -> Options:
        """Options from ``DEBUGBROKER_*`` variables, then explicit (non-None) overrides."""
        options = cls(
            broker_url=os.environ.get("DEBUGBROKER_URL") or DEFAULT_BROKER_URL,
            secret=os.environ.get("DEBUGBROKER_SECRET") or _read_local_secret(),
            dashboard_url=os.environ.get("DEBUGBROKER_PUBLIC_URL") or DEFAULT_DASHBOARD_URL,
            app_name=os.environ.get("DEBUGBROKER_APP", ""),
            insecure_plaintext=environment_flag("DEBUGBROKER_INSECURE_PLAINTEXT"),
            held_reports=max(1, int(_positive_number("DEBUGBROKER_HELD_REPORTS", 64))),
            held_bytes=int(_positive_number("DEBUGBROKER_HELD_MB", 32) * 1024 * 1024),
            repeat_burst=int(_positive_number("DEBUGBROKER_REPEAT_BURST", 20, zero=True)),
            repeat_per_second=_positive_number("DEBUGBROKER_REPEAT_RATE", 2.0, zero=True),
        )
        given = {name: value for name, value in overrides.items() if value is not None}
        return replace(options, **given)  # type: ignore[arg-type]


def middleware_options(
    base: Options,
    *,
    evalex: bool,
    console: bool = False,
    broker_url: str | None = None,
    secret: str | None = None,
    app_name: str | None = None,
    repeat_burst: int | None = None,
) -> Options:
    """A middleware's options: ``base`` with its (non-None) arguments applied.

    Either evalex switch turns evals off (this is remote code execution, so "off" wins);
    either console switch turns the process console on.
    """
    given = {
        "broker_url": broker_url,
        "secret": secret,
        "app_name": app_name,
        "repeat_burst": repeat_burst,
    }
    merged = replace(base, **{k: v for k, v in given.items() if v is not None})  # type: ignore[arg-type]
    return replace(
        merged, evalex=bool(evalex) and merged.evalex, console=bool(console) or merged.console
    )
