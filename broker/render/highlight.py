"""Source highlighting with Pygments, as data: per line, ``[css_class, text]`` pairs.

The dashboard renders these as text inside ``<span class=...>``; no HTML ever leaves the
broker, so a hostile source line cannot become markup.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pygments.lexer import Lexer
from pygments.lexers.python import PythonLexer
from pygments.lexers.templates import HtmlDjangoLexer
from pygments.token import STANDARD_TYPES, _TokenType

from debugbroker.broker.store.frame_targets import report_frames

__all__ = ["highlight_lines", "highlight_report", "is_template"]

HighlightLine = list[list[str]]
_PYTHON = PythonLexer(stripnl=False, ensurenl=False)
# Jinja2 and Django templates: HTML with {% %} / {{ }} (Pygments' "html+jinja").
_TEMPLATE = HtmlDjangoLexer(stripnl=False, ensurenl=False)  # type: ignore[no-untyped-call]
_LEXERS: dict[str, Lexer] = {"python": _PYTHON, "template": _TEMPLATE}
_TEMPLATE_SUFFIXES = (
    ".html", ".htm", ".xml", ".svg", ".jinja", ".jinja2", ".j2", ".djhtml", ".tmpl", ".tpl",
)  # fmt: skip
# How Jinja2 names the frames it rewrites to point at a template (as Werkzeug shows them).
_TEMPLATE_FUNCTIONS = ("top-level template code", "template")


def is_template(filename: str, function: str = "") -> bool:
    """Whether a frame's source is a template (by its file's suffix, or Jinja2's names for
    template frames: ``top-level template code``, ``block 'name'``, ``template``)."""
    if function in _TEMPLATE_FUNCTIONS or function.startswith("block '"):
        return True
    return filename.lower().endswith(_TEMPLATE_SUFFIXES)


def _css_class(token: _TokenType) -> str:
    while token not in STANDARD_TYPES and token.parent is not None:
        token = token.parent
    return str(STANDARD_TYPES.get(token, ""))


@lru_cache(maxsize=512)
def _highlight(source: str, language: str) -> tuple[tuple[tuple[str, str], ...], ...]:
    lines: list[list[tuple[str, str]]] = [[]]
    for token, text in _LEXERS[language].get_tokens(source):
        css = _css_class(token)
        pieces = text.split("\n")
        for number, piece in enumerate(pieces):
            if number:
                lines.append([])
            if piece:
                line = lines[-1]
                if line and line[-1][0] == css:  # merge neighbours of one class
                    line[-1] = (css, line[-1][1] + piece)
                else:
                    line.append((css, piece))
    return tuple(tuple(line) for line in lines)


def highlight_lines(
    lines: list[str], filename: str = "", function: str = ""
) -> list[HighlightLine]:
    """One list of ``[css_class, text]`` pairs per input line: a template (``is_template``)
    as HTML with Jinja/Django tags, anything else as Python."""
    if not lines:
        return []
    language = "template" if is_template(filename, function) else "python"
    highlighted = _highlight("\n".join(lines), language)
    out: list[HighlightLine] = [[list(pair) for pair in line] for line in highlighted]
    out = out[: len(lines)]
    while len(out) < len(lines):
        out.append([["", lines[len(out)]]])
    return out


def highlight_report(report: dict[str, Any]) -> dict[str, Any]:
    """Add ``highlight`` to every frame of a report's wire dict (in place) and return it."""
    for frame in report_frames(report.get("exceptions")):
        context = frame.get("context") or []
        frame["highlight"] = highlight_lines(
            [str(line) for line in context],
            str(frame.get("filename") or ""),
            str(frame.get("function") or ""),
        )
    return report
