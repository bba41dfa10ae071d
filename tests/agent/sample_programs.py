"""Small real programs that fail in typical ways; their reports are checked against golden files.

Line numbers matter to the golden files: add new programs at the end of this file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["PROGRAMS", "failure_of"]


def failure_of(name: str) -> BaseException:
    """Run a program and return the error it raised."""
    try:
        PROGRAMS[name]()
    except BaseException as error:
        return error
    raise AssertionError(f"{name} did not fail")


# --- checkout: a cause chain with locals of every kind --------------------------------------


class OrderError(Exception):
    """An order that cannot be placed."""


@dataclass
class Cart:
    owner: str
    items: list[str] = field(default_factory=list)


def parse_price(text: str) -> int:
    cents = int(text.replace(".", ""))
    return cents


def place_order(cart: Cart, prices: dict[str, str]) -> int:
    api_token = "tok_live_123456"  # noqa: F841 - masked in the report
    notes = "gift wrap, " * 20  # noqa: F841 - a long string, cut
    total = 0
    for item in cart.items:
        try:
            total += parse_price(prices[item])
        except ValueError as error:
            raise OrderError(f"bad price for {item!r}") from error
    return total


def checkout() -> None:
    cart = Cart("ada", [f"item{n}" for n in range(12)])
    prices = {f"item{n}": f"{n}.99" for n in range(12)}
    prices["item3"] = "free"
    place_order(cart, prices)


# --- framework: Paste-style hidden frames ---------------------------------------------------


def framework_dispatch(view: Callable[[], None]) -> None:
    __traceback_hide__ = "before_and_this"  # noqa: F841
    framework_middleware(view)


def framework_middleware(view: Callable[[], None]) -> None:
    __traceback_hide__ = True  # noqa: F841
    view()


def user_view() -> None:
    settings = {"DEBUG": True, "SECRET_KEY": "s3cr3t", "NAME": "shop"}
    settings["MISSING"]


def framework() -> None:
    framework_dispatch(user_view)


# --- batch: an exception group with notes, nested ------------------------------------------


def import_row(number: int, row: str) -> dict[str, object]:
    record: dict[str, object] = json.loads(row)
    if "sku" not in record:
        error = KeyError("sku")
        add_note(error, f"row {number}: {row}")
        raise error
    return record


def batch() -> None:
    rows = ['{"sku": 1}', '{"name": "x"}', "{oops", '{"sku": 2}', "[]"]
    errors: list[Exception] = []
    for number, row in enumerate(rows, 1):
        try:
            import_row(number, row)
        except (KeyError, ValueError, TypeError) as error:
            errors.append(error)
    try:
        raise ExceptionGroup("retries failed", [TimeoutError("row 2"), TimeoutError("row 3")])
    except ExceptionGroup as retries:
        errors.append(retries)
    raise ExceptionGroup(f"{len(errors)} of {len(rows)} rows failed", errors)


# --- implicit context through library code ---------------------------------------------------


def load_config(text: str) -> dict[str, object]:
    try:
        loaded: dict[str, object] = json.loads(text)
        return loaded
    except json.JSONDecodeError:
        defaults = None
        return defaults["fallback"]  # type: ignore[index]


def config() -> None:
    load_config('{"port": 80,}')


PROGRAMS: dict[str, Callable[[], None]] = {
    "checkout": checkout,
    "framework": framework,
    "batch": batch,
    "config": config,
}

# Imported last so that the programs' line numbers stay as the golden files record them.
from tests.agent.compat import ExceptionGroup, add_note  # noqa: E402
