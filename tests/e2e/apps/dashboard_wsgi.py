"""A WSGI app for the dashboard's browser tests: chained errors, and errors full of XSS payloads.

``/chain`` raises a ``ValueError`` caused by a ``KeyError``, with a note and locals;
``/profile`` raises a ``TypeError``.
``/xss`` raises an error whose every field (message, notes, locals, dict keys, file name,
function name, request URL and headers) carries HTML/JavaScript payloads; a dashboard that
renders app data as HTML runs them, one that renders text shows them.
"""

from __future__ import annotations

import linecache
import os
import sys
from collections.abc import Iterable
from typing import Any

from debugbroker import DebuggedApplication

# Each payload, if it ever ran, sets window.__xss (or opens a dialog the tests catch).
PAYLOADS = (
    "<script>window.__xss=1</script>",
    "<img src=x onerror=window.__xss=2>",
    "javascript:window.__xss=3",
    "<svg onload=window.__xss=4>",
    '"><svg onload=window.__xss=5>',
    "'><img src=x onerror=alert(6)>",
)
PAYLOAD = " ".join(PAYLOADS)
# A "file" that exists only in linecache, so the source view shows payload lines too.
XSS_FILENAME = '<img src=x onerror=window.__xss=7>"><svg onload=alert(8)>.py'
XSS_FUNCTION = "<script>window.__xss=9</script>"  # code objects take any name
XSS_LOCAL = '"><img src=x onerror=window.__xss=10>'  # exec locals take any key
XSS_LOCAL_2 = "<svg><script>window.__xss=16</script></svg>"
XSS_SOURCE = """def explode(payload):
    markup = "<img src=x onerror=window.__xss=11>"
    raise RuntimeError(payload)
"""
DRIVER_SOURCE = "explode(payload)\n"


def load_order(orders: dict[str, int], order_id: str) -> int:
    """Fails with a KeyError for unknown orders."""
    quantity = orders[order_id]
    return quantity


def checkout(order_id: str) -> int:
    """Turns the KeyError into the error the user sees, with a note."""
    orders = {"A-1": 3, "B-2": 5}
    try:
        return load_order(orders, order_id)
    except KeyError as error:
        failure = ValueError(f"unknown order {order_id}")
        if sys.version_info >= (3, 11):
            failure.add_note("orders are loaded from the fixture table")
        raise failure from error


def find_user(user_id: int) -> dict[str, str] | None:
    """No user has an id above 100."""
    return {"name": "ada", "email": "ada@example.org"} if user_id <= 100 else None


def profile_email(user_id: int) -> str:
    """Fails with an AttributeError-like TypeError for unknown users."""
    user = find_user(user_id)
    return user["email"]  # type: ignore[index]


def raise_payloads() -> None:
    """Raise an error whose message, notes, locals and frames carry XSS payloads."""
    lines = (XSS_SOURCE + DRIVER_SOURCE).splitlines(keepends=True)
    linecache.cache[XSS_FILENAME] = (len("".join(lines)), None, lines, XSS_FILENAME)
    namespace: dict[str, Any] = {}
    exec(compile(XSS_SOURCE, XSS_FILENAME, "exec"), namespace)
    explode = namespace["explode"]
    explode.__code__ = explode.__code__.replace(co_name=XSS_FUNCTION, co_qualname=XSS_FUNCTION)
    # Dict keys and values, in dicts small enough to be shown whole (4 pairs each).
    evil_dict: dict[str, object] = {payload: payload for payload in PAYLOADS[:3]}
    evil_dict["javascript:window.__xss=12"] = ["<svg/onload=window.__xss=13>"]
    more_evil = {payload: payload for payload in PAYLOADS[3:]}
    frame_locals = {
        "payload": PAYLOAD,
        "explode": explode,
        XSS_LOCAL: evil_dict,
        XSS_LOCAL_2: more_evil,
    }
    # The driver's line numbers follow XSS_SOURCE's in the fake file.
    driver = compile("\n" * XSS_SOURCE.count("\n") + DRIVER_SOURCE, XSS_FILENAME, "exec")
    try:
        exec(driver, namespace, frame_locals)
    except RuntimeError as error:
        if sys.version_info >= (3, 11):
            error.add_note(f"note: {PAYLOAD}")
        raise


def raw_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "/")
    if path == "/pid":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(os.getpid()).encode()]
    if path == "/chain":
        worker_pid = os.getpid()  # noqa: F841 - a local the console reads
        checkout("Z-9")
    if path == "/profile":
        profile_email(404)
    if path.startswith("/xss"):
        raise_payloads()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


app = DebuggedApplication(raw_app, evalex=True)
