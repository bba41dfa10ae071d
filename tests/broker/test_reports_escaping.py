"""Hostile report text never breaks out of its place in the Markdown export or the share page.

Reports come from apps, so every string in them is attacker-controlled as far as these
renderers are concerned. Hypothesis fills a real report's message, notes, locals, file and
function names and request URL with hostile text; the share page must parse into only the
elements the renderer writes (no attribute from the data), and the Markdown must keep the
title on one line and the traceback inside its fence.
"""

from __future__ import annotations

import re
from dataclasses import replace
from html.parser import HTMLParser
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from debugbroker.agent.capture.exceptions import build_report
from debugbroker.agent.options import Options
from debugbroker.broker.render.markdown import report_markdown
from debugbroker.broker.render.share_page import share_page
from debugbroker.broker.store.grouping import fingerprint
from debugbroker.protocol import ReprNode, RequestInfo, Variable, to_wire
from tests.agent.compat import add_note

HOSTILE = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "<script>alert(1)</script>",
            '"><img src=x onerror=alert(2)>',
            "```\n# heading\n```",
            "| a | b |\n|---|---|",
            "</pre></main><a href='javascript:x'>",
            "[link](javascript:alert(3))",
            "\\`\\|",
            "&lt;escaped&gt; &amp;",
            "line\r\nbreak",
            "\u202e\u0000",
        ]
    ),
)
ALLOWED_TAGS = {
    "html", "head", "meta", "title", "link", "body", "main", "p", "h1", "h2", "dl", "div",
    "dt", "dd", "section", "ul", "li", "ol", "pre", "span", "code", "table", "tbody", "tr",
    "th", "td",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"lang", "charset", "name", "content", "rel", "href", "type", "class"}
ALLOWED_ATTRIBUTES |= {"data-testid", "scope"}


class Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def hostile_report(message: str, note: str, name: str, value: str, where: str) -> dict[str, Any]:
    try:
        raise ValueError(message)
    except ValueError as error:
        add_note(error, note)
        report = build_report(
            error,
            report_id="r",
            agent_id="a",
            options=Options(),
            registry=None,
            request=RequestInfo(method="GET", url=f"http://x/{where}"),
        )
    [info] = report.exceptions
    frame = replace(
        info.frames[-1],
        filename=where,
        function=name,
        locals=(Variable(name=name, value=ReprNode(kind="str", type_name="str", text=value)),),
        context=(value, message),
    )
    report = replace(report, exceptions=(replace(info, frames=(frame,)),))
    wire: dict[str, Any] = to_wire(report)
    return wire


@settings(max_examples=150, deadline=None)
@given(HOSTILE, HOSTILE, HOSTILE, HOSTILE, HOSTILE)
def test_share_page_has_only_its_own_markup(
    message: str, note: str, name: str, value: str, where: str
) -> None:
    report = hostile_report(message, note, name, value, where)
    page = share_page(report)
    parser = Collector()
    parser.feed(page)
    parser.close()
    for tag, attributes in parser.tags:
        assert tag in ALLOWED_TAGS, tag
        for attribute, attribute_value in attributes:
            assert attribute in ALLOWED_ATTRIBUTES, attribute
            if attribute == "href":
                assert attribute_value in ("/static/app.css", "/static/favicon.svg")
    text = "".join(parser.text)
    for piece in (message, note, value):
        for line in piece.splitlines():
            if line.strip():
                assert line.strip() in text  # shown as text, whatever it contains


@settings(max_examples=150, deadline=None)
@given(HOSTILE, HOSTILE, HOSTILE, HOSTILE, HOSTILE)
def test_markdown_keeps_every_piece_in_its_place(
    message: str, note: str, name: str, value: str, where: str
) -> None:
    report = hostile_report(message, note, name, value, where)
    markdown = report_markdown(report, "http://broker/#/reports/r")
    lines = markdown.split("\n")
    assert lines[0].startswith("## ValueError") and lines[1] == ""
    fence_open = lines.index("### Traceback") + 2
    fence = re.match(r"`{3,}", lines[fence_open])
    assert fence is not None and lines[fence_open] == fence.group(0) + "text"
    closing = lines.index(fence.group(0), fence_open + 1)
    assert "\n".join(lines[fence_open + 1 : closing]) == report["text"].rstrip("\n")
    for line in lines[closing + 1 :]:
        if line.startswith("|") and not line.startswith("|---"):
            cells = re.split(r"(?<!\\)\|", line)
            assert len(cells) == 4, line  # exactly two cells: nothing split a row


def test_fingerprint_ignores_lines_messages_and_locals() -> None:
    first = hostile_report("one", "n", "f", "v", "app.py")
    second = hostile_report("two", "other", "f", "w", "app.py")
    second["exceptions"][0]["frames"][0]["lineno"] += 10
    assert fingerprint(first) == fingerprint(second)
    moved = hostile_report("one", "n", "g", "v", "app.py")  # another function
    assert fingerprint(moved) != fingerprint(first)
    library = hostile_report("one", "n", "g", "v", "app.py")
    library["exceptions"][0]["frames"][0]["is_library"] = True
    bare = hostile_report("one", "n", "h", "v", "app.py")
    bare["exceptions"][0]["frames"][0]["hidden"] = True
    assert fingerprint(library) == fingerprint(bare)  # neither counts: only the type is left
