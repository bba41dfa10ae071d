"""End to end: a real Starlette app under a real uvicorn, with the ASGI middleware."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.conftest import AppServer, Broker, frame_index, node_text, wait_for


def uvicorn(start_server: Callable[..., AppServer], broker: Broker, app: str) -> AppServer:
    command = ["uvicorn", "--host", "127.0.0.1", "--port", "{port}", f"starlette_app:{app}"]
    return start_server(command, broker.agent_env(), name="uvicorn")


def linked_error(server: AppServer, broker: Broker, accept: str) -> Any:
    """Request /boom until the 500 links the broker's dashboard (the agent was welcomed)."""

    def reported() -> Any:
        answer = server.get("/boom?order=42", headers={"Accept": accept})
        link = answer.headers.get("x-debugbroker-report", "")
        return answer if link.startswith(broker.url + "/#/reports/") else None

    return wait_for(reported, what="a 500 linking the dashboard")


def test_async_endpoint_error_reports_async_frames_and_evals_work_in_them(
    broker: Broker, start_server: Callable[..., AppServer]
) -> None:
    server = uvicorn(start_server, broker, "app")
    assert server.get("/ready").text == "lifespan ran"  # lifespan passed through

    answer = linked_error(server, broker, "text/html")
    assert answer.status == 500
    assert answer.headers["content-type"].startswith("text/html")
    assert "ZeroDivisionError: division by zero" in answer.text
    report_id = answer.headers["x-debugbroker-report"].rsplit("/", 1)[1]
    assert f'href="{broker.url}/#/reports/{report_id}"' in answer.text

    report = wait_for(
        lambda: any(r["id"] == report_id for r in broker.reports()) and broker.report(report_id),
        what="the report",
    )
    assert report["type_name"] == "ZeroDivisionError"
    assert report["app"] == "starlette-test"
    assert report["request"]["method"] == "GET"
    assert report["request"]["url"].endswith("/boom?order=42")
    functions = [f["function"] for info in report["exceptions"] for f in info["frames"]]
    assert functions[-2:] == ["boom", "fetch_total"]

    # Evals run in the agent's eval thread, against the finished coroutines' frames.
    boom = frame_index(report, "boom")
    result = broker.evaluate(report_id, boom, "order_id").json()
    assert result["ok"], result
    assert node_text(result["result"]) == "'42'"
    helper = frame_index(report, "fetch_total")
    result = broker.evaluate(report_id, helper, "items, count, sum(items)").json()
    assert node_text(result["result"]) == "([1, 2, 3], 0, 6)"
    # Names persist per frame, like in the WSGI case.
    assert broker.evaluate(report_id, helper, "doubled = [i * 2 for i in items]").json()["ok"]
    assert node_text(broker.evaluate(report_id, helper, "doubled").json()["result"]) == "[2, 4, 6]"
    # The endpoint's own request object, and a top-level await (run on the app's loop).
    assert node_text(broker.evaluate(report_id, boom, "request.url.path").json()["result"]) == (
        "'/boom'"
    )
    awaited = broker.evaluate(report_id, helper, "await asyncio.sleep(0, result=items)").json()
    assert node_text(awaited["result"]) == "[1, 2, 3]", awaited
    # The documented rule (docs/frameworks.md): every line in an async frame's console runs
    # on the app's loop, await or not (uvicorn runs its loop in the main thread).
    where = (
        "import threading\n"
        "asyncio.get_running_loop().is_running(), "
        "threading.current_thread() is threading.main_thread()"
    )
    for frame in (boom, helper):
        on_loop = broker.evaluate(report_id, frame, where).json()
        assert node_text(on_loop["result"]) == "(True, True)", on_loop
    awaiting = "await asyncio.sleep(0)\nasyncio.get_running_loop().is_running()"
    assert node_text(broker.evaluate(report_id, helper, awaiting).json()["result"]) == "True"
    # An exit in the console ends the line, never the server's loop.
    exited = broker.evaluate(report_id, helper, "raise SystemExit(1)").json()
    assert not exited["ok"] and "SystemExit" in exited["error"], exited
    assert server.get("/").status == 200

    api = server.get("/boom", headers={"Accept": "application/json"})
    assert api.status == 500
    assert api.json()["error"] == "ZeroDivisionError: division by zero"
    assert api.json()["report"] == api.headers["x-debugbroker-report"]
    plain = server.get("/boom", headers={"Accept": "*/*"})
    assert plain.headers["content-type"].startswith("text/plain")
    assert "Open this error in the debugbroker dashboard" in plain.text

    # The error was re-raised: uvicorn logged it as it would without the middleware.
    log = server.process.output()
    assert "Exception in ASGI application" in log
    assert f"debugbroker: report {broker.url}/#/reports/" in log
    # /text is the traceback as the middleware caught it (docs/frameworks.md): uvicorn's log
    # has the same lines below the server's own frames, which the error passed through later.
    text = broker.get(f"/api/reports/{report_id}/text").body.decode()
    header = "Traceback (most recent call last):\n"
    assert text.startswith(header)
    logged = log[log.index("Exception in ASGI application") :]
    assert text.removeprefix(header) in logged
    server_frames = logged[: logged.index(text.removeprefix(header))]
    assert "uvicorn" in server_frames and "boom" not in server_frames


def test_error_after_the_response_started_is_reported_without_a_second_response(
    broker: Broker, start_server: Callable[..., AppServer]
) -> None:
    server = uvicorn(start_server, broker, "app")
    wait_for(lambda: broker.live_agents(), what="the agent")
    try:
        answer = server.get("/stream")
        body = answer.body
    except Exception:  # uvicorn cuts the chunked body short: that is the expected outcome
        body = b""
    assert b"debugbroker" not in body
    wait_for(
        lambda: any(r["message"] == "failed while streaming" for r in broker.reports()),
        what="the streaming error's report",
    )


def test_wrapping_a_whole_starlette_app_from_outside_still_reports(
    broker: Broker, start_server: Callable[..., AppServer]
) -> None:
    server = uvicorn(start_server, broker, "outer_app")
    assert server.get("/ready").text == "lifespan ran"
    # Starlette's own error middleware answered first (its plain 500); the report still comes.
    wait_for(lambda: broker.live_agents(), what="the agent")
    answer = server.get("/boom", headers={"Accept": "text/html"})
    assert answer.status == 500
    assert "x-debugbroker-report" not in answer.headers
    wait_for(
        lambda: any(r["type_name"] == "ZeroDivisionError" for r in broker.reports()),
        what="the report",
    )


def test_console_true_offers_the_process_console_before_any_request(
    broker: Broker, start_server: Callable[..., AppServer]
) -> None:
    server = uvicorn(start_server, broker, "console_app")

    def console_agent() -> dict[str, Any] | None:
        agents = [a for a in broker.live_agents() if a["console"] and a["app"] == "asgi-console"]
        return agents[0] if agents else None

    # No request was made: the agent started with the app, offering its console.
    agent = wait_for(console_agent, what="the ASGI app's agent with a console")
    path = f"/api/agents/{agent['agent_id']}/eval"
    code = (
        "import os, threading\nawait asyncio.sleep(0)\n"
        "os.getpid(), threading.current_thread() is threading.main_thread()"
    )
    answer = broker.post(path, {"code": "import asyncio\n" + code})
    assert answer.status == 200, answer.text
    result = answer.json()
    assert result["ok"], result["error"]
    # uvicorn's loop runs on the main thread: the await ran on the app's own loop.
    assert node_text(result["result"]) == f"({server.get('/').text}, True)"


def test_an_unretrieved_background_task_error_is_reported_by_default(
    broker: Broker, start_server: Callable[..., AppServer]
) -> None:
    server = uvicorn(start_server, broker, "app")
    wait_for(lambda: broker.live_agents(), what="the server's agent")
    assert server.get("/forget?sku=C-3").status == 200
    summary = wait_for(
        lambda: next((r for r in broker.reports() if r["type_name"] == "LookupError"), None),
        what="the background task's report",
    )
    report = broker.report(summary["id"])
    (panel,) = report["panels"]
    assert dict(panel["items"])["message"] == "Task exception was never retrieved"
    answer = broker.evaluate(report["id"], frame_index(report, "restock"), "os.getpid(), shelf")
    assert answer.status == 200, answer.text
    assert node_text(answer.json()["result"]) == f"({server.get('/').text}, {{'sku': 'C-3'}})"
