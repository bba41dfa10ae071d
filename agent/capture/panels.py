"""A report's panels: where it came from (a task, a log record, the caller's keywords) as text.

Every value goes through the safe-repr path (``reprs.tree.represent``: caps, recursion guard,
time budget, ``<broken repr …>``) and is flattened to one line; a value whose name looks like a
credential is masked, as are secret-looking keys inside it. Building a panel never raises.
"""

from __future__ import annotations

from collections.abc import Iterable

from debugbroker.agent.options import Options
from debugbroker.agent.reprs.safe_text import USER_CODE_ERRORS, describe_error, safe_text
from debugbroker.agent.reprs.secret_names import secret_pattern
from debugbroker.agent.reprs.tree import Budget, represent
from debugbroker.protocol import Panel, format_node

__all__ = ["MAX_PANEL_ITEMS", "MAX_PANEL_TEXT", "MASK", "make_panel", "text_of"]

MAX_PANEL_ITEMS = 64  # rows of one panel; the rest are counted in a last row
MAX_PANEL_TEXT = 4_096  # characters of one value's text
MASK = "<masked>"


def text_of(value: object, options: Options, budget: Budget | None = None) -> str:
    """``value`` as one bounded line of text, through the safe-repr path; never raises."""
    try:
        if isinstance(value, str):
            text = value
        else:
            text = format_node(represent(value, options, budget=budget))
        shown, omitted = safe_text(text, MAX_PANEL_TEXT)
        return f"{shown}...({omitted} more)" if omitted else shown
    except USER_CODE_ERRORS as error:
        return f"<broken repr ({describe_error(error, 200)})>"


def make_panel(title: str, items: Iterable[tuple[str, object]], options: Options) -> Panel:
    """A panel titled ``title`` of ``(name, value)`` rows, values as safe text; never raises.

    A value is taken as is when it is already text made by the caller (``str``); anything
    else is represented. Names matching ``Options.secret_names`` have their values masked.
    """
    rows: list[tuple[str, str]] = []
    secret = secret_pattern(options)
    budget = Budget(options.repr_budget_seconds)
    try:
        for position, (name, value) in enumerate(items):
            if position >= MAX_PANEL_ITEMS:
                rows.append(("…", "more values left out"))
                break
            label = safe_text(str(name), 200)[0]
            rows.append((label, MASK if secret.search(label) else text_of(value, options, budget)))
    except USER_CODE_ERRORS as error:  # an iterable of the app's that fails half-way
        rows.append(("<error>", f"<could not read the values: {describe_error(error, 200)}>"))
    return Panel(title=title, items=tuple(rows))
