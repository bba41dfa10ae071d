"""A WSGI app for the traceback-fidelity browser tests.

``/group`` raises an exception group of three sub-exceptions, each from its own function
(one a nested group, one chained), with a local list of 50 rows for the "+" expansion.
``/limited`` sets ``sys.tracebacklimit = 2`` (as an app keeping its logs short does) and
raises four calls deep.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any

from debugbroker import DebuggedApplication


def load_orders(rows: list[int]) -> None:
    raise ValueError(f"{len(rows)} rows could not be loaded")


def charge_card(amount: int) -> None:
    try:
        dict[str, int]()["card"]
    except KeyError as error:
        raise RuntimeError(f"charging {amount} failed") from error


def notify(users: list[str]) -> None:
    errors: list[Exception] = []
    for user in users:
        try:
            raise ConnectionError(f"mail to {user} bounced")
        except ConnectionError as error:
            errors.append(error)
    raise ExceptionGroup("notifications failed", errors)  # type: ignore[name-defined]  # noqa: F821


def run_batch() -> None:
    rows = list(range(50))
    errors: list[Exception] = []
    steps: tuple[Callable[[], object], ...] = (
        lambda: load_orders(rows),
        lambda: charge_card(12),
        lambda: notify(["ada", "bob"]),
    )
    for step in steps:
        try:
            step()
        except Exception as error:
            errors.append(error)
    raise ExceptionGroup("batch failed", errors)  # type: ignore[name-defined]  # noqa: F821


def descend(depth: int) -> None:
    if depth == 0:
        raise LookupError("deep down")
    descend(depth - 1)


def application(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    if environ.get("PATH_INFO") == "/group":
        run_batch()
    if environ.get("PATH_INFO") == "/limited":
        sys.tracebacklimit = 2
        descend(3)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok\n"]


app = DebuggedApplication(application, app_name="fidelity")
