"""End to end: secrets a real Flask, Django and Starlette request carries stay masked
everywhere a report or a console shows them: the app's 500 answer, the report JSON, ``/text``,
the Markdown export, the share page (and its text), and a view-only reader's transcript.

Every secret the request carries contains ``7Z`` and nothing else does, so one check per
view finds any of them. Flask and Django run under wsgiref, which copies ``os.environ``
(``DATABASE_URL`` with its password) into every request's environ; Starlette under uvicorn.
"""

from __future__ import annotations

import html
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.conftest import AppServer, Broker, frame_index, http, wait_for

VIEW_TOKEN = "view-token-masking"
MARK = "7Z"  # in every secret below and nowhere else
QUERY = {
    "api_token": "qtok7Z1",
    "api-key": "akey7Z2",
    "key": "kval7Z3",
    "pass": "pval7Z4",
    "pin": "pin7Z5",
    "card": "card7Z6",
    "page": "2",
}
FORM = {"password": "fpass7Z7", "user": "ada"}
HEADERS = {
    "Authorization": "Bearer htok7Z8",
    "Cookie": "sessionid=csess7Z9; theme=dark",
    "X-Api-Key": "xkey7ZB",
    "Content-Type": "application/x-www-form-urlencoded",
    "Accept": "text/html",
}
DATABASE_URL = "postgres://app:dbpw7ZA@db:5432/shop"
SERVERS = {
    "flask": (["python", "-m", "tests.e2e.apps.leaky", "flask_app:app", "{port}"], "leak"),
    "django": (
        ["python", "-m", "tests.e2e.apps.leaky", "django_app:application", "{port}"],
        "leak",
    ),
    "starlette": (
        ["uvicorn", "--host", "127.0.0.1", "--port", "{port}", "starlette_app:app"],
        "leak",
    ),
}
# Locals each view holds: framework objects that must render as mappings (kind "dict").
# (``cookies`` is masked whole: its name looks secret.)
MAPPINGS = {
    "flask": ("form", "args", "headers"),
    "django": ("form", "query", "headers"),
    "starlette": ("form", "query", "headers"),
}
# Printed and echoed in the console: a secret in a URL, a dict, a dataclass, a mapping.
EVAL = "print(dsn)\nprint(dict(cookies))\nprint(login)\nprint(raw)\nheaders"


@pytest.fixture
def masking_broker(tmp_path: Path) -> Iterator[Broker]:
    started = Broker(tmp_path, "--view-token", VIEW_TOKEN).start()
    yield started
    started.stop()


def hidden(text: str, where: str) -> None:
    assert MARK not in text, f"a secret leaked into {where}: {text[text.find(MARK) - 200 :][:400]}"


def local(report: dict[str, Any], function: str, name: str) -> dict[str, Any]:
    for info in report["exceptions"]:
        for frame in info["frames"]:
            if frame["function"].endswith(function):
                for variable in frame["locals"]:
                    if variable["name"] == name:
                        found: dict[str, Any] = variable["value"]
                        return found
    raise AssertionError(f"no local {name} in {function}")


@pytest.mark.parametrize("framework", sorted(SERVERS))
def test_a_real_request_s_secrets_are_masked_in_every_view(
    masking_broker: Broker, start_server: Callable[..., AppServer], framework: str
) -> None:
    broker = masking_broker
    command, view = SERVERS[framework]
    if command[0] == "python":
        command = [sys.executable, *command[1:]]
    env = broker.agent_env(DATABASE_URL=DATABASE_URL)
    server = start_server(command, env, name=framework)

    answer = http(
        "POST",
        f"{server.url}/leak?{urlencode(QUERY)}",
        headers=HEADERS,
        body=urlencode(FORM).encode(),
    )
    assert answer.status == 500, answer.text
    hidden(html.unescape(answer.text), "the 500 page")
    assert "PermissionError: refused token=&lt;masked&gt;" in answer.text

    def captured() -> dict[str, Any] | None:
        for summary in broker.reports():
            if summary["type_name"] == "PermissionError":
                return broker.report(summary["id"])
        return None

    report = wait_for(captured, what="the report")
    report_id = report["id"]
    raw_json = broker.get(f"/api/reports/{report_id}").text
    hidden(json.dumps(json.loads(raw_json), ensure_ascii=False), "the report JSON")
    assert report["message"] == "refused token=<masked>"
    # The request panel: masked by name (query, form, headers, cookies) and by value.
    request = report["request"]
    assert dict(map(tuple, request["query"]))["key"] == "<masked>"
    assert dict(map(tuple, request["headers"]))["Authorization"] == "Bearer <masked>"
    if framework != "starlette":  # wsgiref's environ holds os.environ; an ASGI scope does not
        assert dict(map(tuple, request["environ"]))["DATABASE_URL"] == (
            "postgres://app:<masked>@db:5432/shop"
        )
    if framework == "flask":  # the form the app parsed, kept on Werkzeug's request
        assert dict(map(tuple, request["form"]))["password"] == "<masked>"
    for name in MAPPINGS[framework]:
        assert local(report, view, name)["kind"] == "dict", name
    assert "password=" in local(report, view, "login")["text"]
    assert local(report, view, "cookies")["text"] == "'********************'"

    text = broker.get(f"/api/reports/{report_id}/text")
    assert text.status == 200
    hidden(text.text, "/text")
    assert "PermissionError: refused token=<masked>" in text.text
    markdown = broker.get(f"/api/reports/{report_id}/markdown")
    assert markdown.status == 200
    hidden(markdown.text, "the Markdown export")
    assert "token=<masked>" in markdown.text

    share = broker.post(f"/api/reports/{report_id}/share", {})
    assert share.status == 201, share.text
    path = share.json()["path"]
    page = http("GET", broker.url + path)
    assert page.status == 200
    hidden(html.unescape(page.text), "the share page")
    share_text = http("GET", broker.url + path + "/text")
    assert share_text.status == 200
    hidden(share_text.text, "the share page's text")

    index = frame_index(report, report["exceptions"][-1]["frames"][-1]["function"])
    result = broker.evaluate(report_id, index, EVAL)
    assert result.status == 200 and result.json()["ok"], result.text
    hidden(result.text, "the eval answer")
    assert "postgres://app:<masked>@db:5432/shop" in result.json()["output"]
    transcript_path = f"/api/reports/{report_id}/frames/{index}/transcript"
    for token in (broker.token, VIEW_TOKEN):
        transcript = http(
            "GET", broker.url + transcript_path, headers={"Authorization": f"Bearer {token}"}
        )
        assert transcript.status == 200, transcript.text
        assert transcript.json()["entries"], transcript.text
        hidden(transcript.text, f"the transcript ({'view' if token == VIEW_TOKEN else 'full'})")
