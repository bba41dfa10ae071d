"""End to end: real Flask and Django apps under gunicorn, set up as docs/frameworks.md says."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import AppServer, Broker, frame_index, http, node_text, wait_for

APPS = {"flask": ("flask_app:app", "order"), "django": ("django_app:application", "order")}
# The framework's request, as the view sees it: Flask's context-bound proxy (its preserved
# contexts are pushed for the eval) and Django's request argument.
REQUEST_EVAL = {"flask": "request.args['customer']", "django": "request.GET['customer']"}


@pytest.mark.parametrize("framework", sorted(APPS))
def test_a_view_error_reports_and_evals_run_in_the_view_frame(
    broker: Broker, start_server: Callable[..., AppServer], framework: str
) -> None:
    target, view = APPS[framework]
    command = ["gunicorn", "-w", "2", "-k", "gthread", "--threads", "2", "{bind}", target]
    server = start_server(command, broker.agent_env(), name=framework)
    assert server.get("/orders/1").text == "ada: 4.0"

    def linked() -> Any:
        answer = server.get("/orders/2?customer=grace", headers={"Accept": "text/html"})
        assert answer.status == 500, answer.text
        link = answer.headers.get("x-debugbroker-report", "")
        return answer if link.startswith(broker.url + "/#/reports/") else None

    answer = wait_for(linked, what="a 500 linking the dashboard")
    assert "ZeroDivisionError: division by zero" in answer.text
    report_id = answer.headers["x-debugbroker-report"].rsplit("/", 1)[1]
    report = wait_for(
        lambda: any(r["id"] == report_id for r in broker.reports()) and broker.report(report_id),
        what="the report",
    )
    assert report["app"] == f"{framework}-test"
    assert report["request"]["url"].endswith("/orders/2?customer=grace")
    functions = [f["function"] for info in report["exceptions"] for f in info["frames"]]
    assert functions[-2:] == [view, "average"]

    index = frame_index(report, view)
    result = broker.evaluate(report_id, index, "customer, order_id, items").json()
    assert result["ok"], result
    assert node_text(result["result"]) == "('grace', 2, [])"
    seen = broker.evaluate(report_id, index, REQUEST_EVAL[framework]).json()
    assert node_text(seen["result"]) == "'grace'", seen
    pid = broker.evaluate(report_id, index, "import os\nos.getpid()").json()
    assert node_text(pid["result"]) == str(report["pid"])


SIGNAL_APPS = {"flask": "flask_signals_app:app", "django": "django_signals_app:application"}


@pytest.mark.parametrize("framework", sorted(SIGNAL_APPS))
def test_an_app_answering_its_own_500_still_reports_through_the_signal(
    broker: Broker, start_server: Callable[..., AppServer], framework: str
) -> None:
    command = ["gunicorn", "-w", "2", "{bind}", SIGNAL_APPS[framework]]
    server = start_server(command, broker.agent_env(), name=f"{framework}-signals")
    answer = server.get("/orders/2?customer=grace")
    assert answer.status == 500  # the framework's own page: the app keeps its handling
    assert "x-debugbroker-report" not in answer.headers
    summary = wait_for(
        lambda: next((r for r in broker.reports() if r["type_name"] == "ZeroDivisionError"), None),
        what="the signal's report",
    )
    report = broker.report(summary["id"])
    assert report["request"]["url"].endswith("/orders/2?customer=grace")
    index = frame_index(report, "order")
    result = broker.evaluate(report["id"], index, "import os\nos.getpid(), customer, items")
    assert result.status == 200, result.text
    assert node_text(result.json()["result"]) == f"({report['pid']}, 'grace', [])"
    assert report["pid"] != server.process.pid  # a gunicorn worker, not the arbiter
    assert len([r for r in broker.reports() if r["type_name"] == "ZeroDivisionError"]) == 1


@pytest.mark.parametrize("framework", sorted(SIGNAL_APPS))
def test_an_error_logged_then_handled_by_the_framework_is_one_report(
    broker: Broker, start_server: Callable[..., AppServer], framework: str
) -> None:
    """The view logs the error and re-raises; the framework sends got_request_exception and
    logs it once more itself (Flask's app.logger, Django's django.request): one report."""
    command = ["gunicorn", "-w", "1", "{bind}", SIGNAL_APPS[framework]]
    server = start_server(command, broker.agent_env(), name=f"{framework}-logged")
    assert server.get("/logged/9").status == 500
    # A later error of the same worker: its report is queued after any of the first's.
    assert server.get("/orders/2").status == 500
    wait_for(
        lambda: any(r["type_name"] == "ZeroDivisionError" for r in broker.reports()),
        what="the later error's report",
    )
    logged = [r for r in broker.reports() if r["type_name"] == "KeyError"]
    assert len(logged) == 1, logged
    report = broker.report(logged[0]["id"])
    (record,) = [dict(p["items"]) for p in report["panels"] if p["title"] == "Log record"]
    assert (record["message"], record["logger"]) == ("order 9 is missing", "shop.orders")
    result = broker.evaluate(report["id"], frame_index(report, "logged"), "os.getpid(), order_id")
    assert result.status == 200, result.text
    assert node_text(result.json()["result"]) == f"({report['pid']}, 9)"
    zero = [r for r in broker.reports() if r["type_name"] == "ZeroDivisionError"]
    assert len(zero) == 1, zero  # signalled and logged by the framework: one report too


def test_django_form_panel_shows_what_the_view_parsed(
    broker: Broker, start_server: Callable[..., AppServer]
) -> None:
    """The view read ``request.POST`` and ``request.FILES``: the panel lists them, masked."""
    command = ["gunicorn", "-w", "1", "{bind}", APPS["django"][0]]
    server = start_server(command, broker.agent_env(), name="django-form")
    boundary = "debugbroker-boundary"
    parts = [("amount", "0"), ("card_token", "tok_visa")]
    body = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in parts
    )
    body += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="receipt"; filename="r.txt"\r\n'
        f"Content-Type: text/plain\r\n\r\npaid\r\n--{boundary}--\r\n"
    )
    answer = http(
        "POST",
        server.url + "/checkout",
        headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Accept": "application/json",
        },
        body=body.encode(),
    )
    assert answer.status == 500, answer.text
    link = answer.json()["report"]
    assert link, answer.text
    path = f"/api/reports/{link.rsplit('/', 1)[1]}"
    wait_for(lambda: broker.get(path).status == 200, what="the report")
    request = broker.get(path).json()["request"]
    assert request["form_note"] == ""
    assert [tuple(pair) for pair in request["form"]] == [
        ("amount", "0"),
        ("card_token", "<masked>"),
        ("receipt", "r.txt"),
    ]
