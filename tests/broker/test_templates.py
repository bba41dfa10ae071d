"""Template frames (Jinja2): named as Werkzeug names them and highlighted as templates."""

from __future__ import annotations

import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2
import pytest

from debugbroker.agent.capture.exceptions import build_report
from debugbroker.agent.options import Options
from debugbroker.agent.process import eval_dispatcher
from debugbroker.agent.transport.transport import Transport
from debugbroker.broker.render.highlight import highlight_lines, is_template
from tests.conftest import Broker, wait_for

BASE = """<html><body>
{% block content %}{% endblock %}
</body></html>
"""
PAGE = """{% extends "base.html" %}
{% set title = "Checkout" %}
{% block content %}
<label for="qty">Quantity</label>
{% for item in items %}{{ item.price / item.count }}{% endfor %}
{% endblock %}
"""


@pytest.fixture
def agent(broker: Broker) -> Iterator[Transport]:
    transport = Transport(
        Options(broker_url=broker.zmq_url, secret=broker.secret, heartbeat_seconds=0.2),
        eval_dispatcher,
    )
    assert transport.wait_connected(20), "the agent was not welcomed"
    yield transport
    transport.close()


def template_error(tmp_path: Path) -> BaseException:
    (tmp_path / "base.html").write_text(BASE)
    (tmp_path / "page.html").write_text(PAGE)
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(tmp_path))
    try:
        environment.get_template("page.html").render(items=[{"price": 3, "count": 0}])
    except ZeroDivisionError as error:
        return error
    raise AssertionError("the template did not fail")


def test_jinja_frames_are_named_and_highlighted_as_templates(
    broker: Broker, agent: Transport, tmp_path: Path
) -> None:
    error = template_error(tmp_path)
    report = build_report(
        error,
        report_id=uuid.uuid4().hex,
        agent_id=agent.agent_id,
        options=agent.options,
        registry=agent.registry,
    )
    agent.submit_report(report)
    path = f"/api/reports/{report.id}"
    wait_for(lambda: broker.get(path).status == 200, what="the report")
    frames: list[dict[str, Any]] = broker.get(path).json()["exceptions"][-1]["frames"]
    template_frames = [f for f in frames if f["filename"].endswith(".html")]
    names = [f["function"] for f in template_frames]
    # As the text (CPython prints co_name) and Werkzeug's debugger show them.
    assert names == ["top-level template code", "top-level template code", "block 'content'"]
    text = "".join(traceback.format_exception(error))
    for name in names:
        assert f"in {name}\n" in text
    page = template_frames[-1]
    label = page["context"].index('<label for="qty">Quantity</label>')
    classes = {text: css for css, text in page["highlight"][label]}
    assert classes.get("for") != "k", page["highlight"][label]  # an attribute, not a keyword
    assert "{%" in "".join(t for _, t in page["highlight"][label + 1])


def test_which_sources_are_templates() -> None:
    assert is_template("templates/page.html")
    assert is_template("emails/welcome.txt", "block 'body'")
    assert is_template("emails/welcome.txt", "top-level template code")
    assert not is_template("shop/views.py", "checkout")
    [python] = highlight_lines(["for x in y:"], "app.py")
    assert ["k", "for"] in python
    [html] = highlight_lines(['<label for="x">'], "page.html")
    assert ["k", "for"] not in html
