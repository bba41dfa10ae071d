"""Groups, search, Markdown, share links, source and "+" against a real broker and real agents."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from werkzeug.test import EnvironBuilder

from debugbroker.agent.capture.exceptions import build_report
from debugbroker.agent.capture.request import build_request_info
from debugbroker.agent.options import Options
from debugbroker.agent.process import eval_dispatcher
from debugbroker.agent.transport.transport import Transport
from debugbroker.broker.store.grouping import fingerprint, fingerprint_parts
from debugbroker.protocol import Report, to_wire
from tests.conftest import Broker, http, wait_for


def make_agent(broker: Broker, name: str) -> Transport:
    transport = Transport(
        Options(
            broker_url=broker.zmq_url, secret=broker.secret, app_name=name, heartbeat_seconds=0.2
        ),
        eval_dispatcher,
    )
    assert transport.wait_connected(20), "the agent was not welcomed"
    return transport


@pytest.fixture
def agents(broker: Broker) -> Iterator[list[Transport]]:
    made = [make_agent(broker, "shop"), make_agent(broker, "shop")]
    yield made
    for transport in made:
        transport.close()


def checkout(items: list[int], password: str) -> None:
    config = {"retries": 3, "api_key": "K3Y", "region": "eu"}  # noqa: F841 - shown masked
    long_text = "x" * 500  # noqa: F841 - cut, "+" shows more
    session_token = f"tok-{len(items)}-zz"  # noqa: F841 - masked: never leaves the process
    raise ValueError(f"bad cart with {len(items)} items")


def lookup_user(name: str) -> None:
    raise KeyError(name)


def fail(function: Callable[..., None], *args: Any) -> BaseException:
    try:
        function(*args)
    except Exception as error:
        return error
    raise AssertionError("did not raise")


def submit(broker: Broker, agent: Transport, error: BaseException, path: str = "/cart") -> Report:
    request = build_request_info(EnvironBuilder(path=path).get_environ(), agent.options)
    report = build_report(
        error,
        report_id=uuid.uuid4().hex,
        agent_id=agent.agent_id,
        options=agent.options,
        registry=agent.registry,
        request=request,
    )
    agent.submit_report(report)
    wait_for(lambda: broker.get(f"/api/reports/{report.id}").status == 200, what="the report")
    return report


def compact(path: list[object]) -> str:
    """A "+" handle as the agent writes it."""
    return json.dumps(path, separators=(",", ":"))


def ids(answer_reports: list[dict[str, Any]]) -> set[str]:
    return {r["id"] for r in answer_reports}


# --- groups and search -----------------------------------------------------------------------


def test_groups_and_filters(broker: Broker, agents: list[Transport]) -> None:
    first, second = agents
    carts = [
        submit(broker, first, fail(checkout, list(range(50)), "pw1"), "/cart/1"),
        submit(broker, second, fail(checkout, [1], "pw2"), "/cart/2"),
        submit(broker, first, fail(checkout, [], "pw3"), "/api/cart"),
    ]
    user = submit(broker, second, fail(lookup_user, "grace"), "/users/grace")

    groups = broker.get("/api/groups").json()["groups"]
    assert [g["count"] for g in groups] == [1, 3]  # the newest group first
    cart_group = groups[1]
    assert cart_group["latest"]["id"] == carts[-1].id
    assert cart_group["first_seen"] == pytest.approx(carts[0].created)
    assert cart_group["last_seen"] == pytest.approx(carts[-1].created)
    workers = {(w["agent_id"], w["count"]) for w in cart_group["workers"]}
    assert workers == {(first.agent_id, 2), (second.agent_id, 1)}
    assert groups[0]["latest"]["id"] == user.id
    assert cart_group["fingerprint"] != groups[0]["fingerprint"]
    # The fingerprint stored with a live report is the one of its stored body: the app's
    # frames count, not only the exception type.
    stored = broker.get(f"/api/reports/{carts[0].id}").json()
    assert cart_group["fingerprint"] == fingerprint(stored)
    assert any(part.endswith(":checkout") for part in fingerprint_parts(stored))

    def listed(query: str) -> set[str]:
        answer = broker.get(f"/api/reports?{query}")
        assert answer.status == 200, answer.text
        return ids(answer.json()["reports"])

    cart_ids = {r.id for r in carts}
    assert listed(f"fingerprint={cart_group['fingerprint']}") == cart_ids
    assert listed("type=KeyError") == {user.id}
    assert listed("type=ValueError") == cart_ids
    assert listed("path=/cart") == {carts[0].id, carts[1].id}  # a prefix of the URL path
    assert listed("path=/api") == {carts[2].id}
    assert listed(f"agent={second.agent_id}") == {carts[1].id, user.id}
    assert listed("q=50+items") == {carts[0].id}  # anywhere in the report
    assert listed("q=grace") == {user.id}  # not hex: ids never match it
    assert listed("q=100%25") == set()  # LIKE wildcards are literal
    assert listed("q=tok-50-zz") == set()  # a masked local: never stored
    assert listed("type=ValueError&agent=" + first.agent_id) == {carts[0].id, carts[2].id}
    too_long = broker.get("/api/reports?q=" + "x" * 600)
    assert too_long.status == 400 and "limited" in too_long.json()["error"]
    assert broker.get("/api/groups?limit=0").status == 400


# --- Markdown ----------------------------------------------------------------------------------


def test_markdown_export(broker: Broker, agents: list[Transport]) -> None:
    def hostile() -> None:
        note = "pipes | and ``` fences"  # noqa: F841
        raise RuntimeError("```\n| injected | table |\n<script>alert(1)</script>")

    report = submit(broker, agents[0], fail(hostile))
    answer = broker.get(f"/api/reports/{report.id}/markdown")
    assert answer.status == 200
    assert answer.headers["content-type"] == "text/markdown; charset=utf-8"
    text = answer.text
    assert text.startswith("## RuntimeError: \\`\\`\\`")
    assert "````text\n" + report.text.rstrip("\n") + "\n````" in text  # a longer fence
    assert "| note | 'pipes \\| and \\`\\`\\` fences' |" in text
    assert "<script>" not in text.split("````")[0]  # the title escapes it
    assert f"/#/reports/{report.id}" in text
    cart = submit(broker, agents[0], fail(checkout, [1, 2], "hunter2"))
    cart_text = broker.get(f"/api/reports/{cart.id}/markdown").text
    assert "tok-2-zz" not in cart_text and "'K3Y'" not in cart_text
    assert "| password | '\\*\\*\\*" in cart_text
    assert broker.get("/api/reports/nope/markdown").status == 404


# --- share links -------------------------------------------------------------------------------


def test_share_link_is_read_only_and_revocable(broker: Broker, agents: list[Transport]) -> None:
    def hostile() -> None:
        raise RuntimeError("<script>alert('x')</script>")

    report = submit(broker, agents[0], fail(hostile))
    created = broker.post(f"/api/reports/{report.id}/share", {})
    assert created.status == 201, created.text
    share = created.json()
    assert len(share["share_id"]) >= 32 and share["path"] == f"/share/{share['share_id']}"
    page = http("GET", broker.url + share["path"])  # no login
    assert page.status == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    body = page.text
    assert "<script>" not in body and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in body
    assert "hostile" in body and 'data-testid="shared-report"' in body
    assert "eval" not in body.lower().replace("evaluation", "")
    text = http("GET", broker.url + share["path"] + "/text")
    assert text.status == 200 and text.body == report.text.encode()
    # The share gives no API access: evals still need a login.
    frame_index = report.exceptions[-1].frames[-1].index
    anonymous_eval = http(
        "POST",
        f"{broker.url}/api/reports/{report.id}/frames/{frame_index}/eval",
        json_body={"code": "1"},
    )
    assert anonymous_eval.status == 401
    assert http("POST", broker.url + share["path"], body=b"x").status in (404, 405)
    listed = broker.get(f"/api/reports/{report.id}/shares").json()["shares"]
    assert [s["share_id"] for s in listed] == [share["share_id"]]
    assert (
        broker.post(f"/api/reports/{report.id}/share", {}).json()["share_id"] != share["share_id"]
    )
    revoked = http("DELETE", f"{broker.url}/api/shares/{share['share_id']}", headers=broker.auth())
    assert revoked.status == 200
    assert http("GET", broker.url + share["path"]).status == 404
    assert http("GET", broker.url + "/share/guess").status == 404
    audit = broker.get("/api/audit").json()["entries"]
    shared = [e for e in audit if e["action"].startswith("share_")]
    assert [e["action"] for e in shared] == ["share_revoked", "share_created", "share_created"]
    assert all(e["report_id"] == report.id for e in shared)
    assert all(share["share_id"] not in e["detail"] for e in shared)  # never a usable link
    assert broker.post("/api/reports/nope/share", {}).status == 404


def test_view_token_cannot_share(tmp_path: Any) -> None:
    started = Broker(tmp_path, "--view-token", "viewer-token").start()
    try:
        agent = make_agent(started, "viewer")
        try:
            report = submit(started, agent, fail(lookup_user, "x"))
            answer = http(
                "POST",
                f"{started.url}/api/reports/{report.id}/share",
                headers={"Authorization": "Bearer viewer-token"},
                json_body={},
            )
            assert answer.status == 403
        finally:
            agent.close()
    finally:
        started.stop()


# --- source and "+" -----------------------------------------------------------------------------


def test_source_from_the_agent_then_from_the_report(
    broker: Broker, agents: list[Transport]
) -> None:
    agent = agents[0]
    report = submit(broker, agent, fail(checkout, [1], "pw"))
    frame = report.exceptions[-1].frames[-1]
    answer = broker.get(f"/api/reports/{report.id}/frames/{frame.index}/source")
    assert answer.status == 200, answer.text
    source = answer.json()
    assert source["origin"] == "agent" and source["first_line"] == 1
    with open(__file__, encoding="utf-8") as handle:
        assert source["lines"] == handle.read().splitlines()
    assert source["lineno"] == frame.lineno and len(source["highlight"]) == len(source["lines"])
    assert broker.get(f"/api/reports/{report.id}/frames/999/source").status == 404
    assert broker.get(f"/api/reports/{report.id}/frames/x/source").status == 400
    # Once the agent releases the frame, the report's own lines are served, and said so.
    agent.registry.release_report(report.id)
    fallback = broker.get(f"/api/reports/{report.id}/frames/{frame.index}/source").json()
    assert fallback["origin"] == "report" and "released" in fallback["note"]
    assert fallback["lines"] == list(frame.context)
    assert fallback["first_line"] == frame.context_start


def test_plus_expands_while_the_frame_is_held(broker: Broker, agents: list[Transport]) -> None:
    agent = agents[0]
    report = submit(broker, agent, fail(checkout, list(range(50)), "pw"))
    frame = report.exceptions[-1].frames[-1]
    values = {v.name: v.value for v in frame.locals}
    assert values["password"].more is None  # masked values have no "+"
    config = values["config"]
    assert config.omitted == 0 and config.more is None  # 3 pairs: nothing cut
    long_text = values["long_text"]
    assert long_text.omitted == 430 and long_text.more == compact(["long_text"])

    outer = report.exceptions[-1].frames[-2]  # fail(): its locals hold the args tuple
    items_node = next(v.value for v in outer.locals if v.name == "args")
    inner_list = items_node.children[0]
    assert inner_list.omitted == 42 and inner_list.more == compact(["args", 0])

    path = f"/api/reports/{report.id}/frames/{outer.index}/expand"
    answer = broker.post(path, {"handle": inner_list.more, "offset": 8})
    assert answer.status == 200, answer.text
    node = answer.json()["node"]
    assert [child["text"] for child in node["children"]] == [str(n) for n in range(8, 50)]
    assert node["omitted"] == 0

    string_path = f"/api/reports/{report.id}/frames/{frame.index}/expand"
    whole = broker.post(string_path, {"handle": long_text.more, "offset": 0}).json()["node"]
    assert whole["text"] == repr("x" * 500) and whole["omitted"] == 0

    masked = broker.post(string_path, {"handle": json.dumps(["password"]), "offset": 0})
    assert masked.status == 422 and "masked" in masked.json()["error"]
    secret_key = broker.post(string_path, {"handle": json.dumps(["config", 1, 1]), "offset": 0})
    assert secret_key.status == 422 and "masked" in secret_key.json()["error"]
    for bad in ({"handle": "not json"}, {"handle": "[1]"}, {"handle": json.dumps(["gone"])}):
        unexpandable = broker.post(string_path, {**bad, "offset": 0})
        assert unexpandable.status == 422 and "reason" not in unexpandable.json()
    assert broker.post(string_path, {"handle": "", "offset": 0}).status == 400
    assert broker.post(string_path, {"handle": "[]", "offset": -1}).status == 400

    agent.registry.release_report(report.id)
    released = broker.post(path, {"handle": inner_list.more, "offset": 8})
    assert released.status == 409 and "released" in released.json()["error"]
    assert released.json()["reason"] == "released"


def test_reports_stored_before_fingerprints_get_one(tmp_path: Any) -> None:
    """A database from before this column: the broker adds it and fills it on start."""
    import sqlite3
    from contextlib import closing

    error = fail(lookup_user, "old")
    report = build_report(
        error, report_id="old-report", agent_id="gone", options=Options(), registry=None
    )
    body = json.dumps(to_wire(report))
    started = Broker(tmp_path)
    started.data_dir.mkdir(parents=True)
    with (
        closing(sqlite3.connect(started.data_dir / "debugbroker.sqlite3")) as connection,
        connection,
    ):
        connection.execute(
            "CREATE TABLE reports (id TEXT PRIMARY KEY, agent_id TEXT NOT NULL, created REAL "
            "NOT NULL, type_name TEXT NOT NULL, message TEXT NOT NULL, pid INTEGER NOT NULL, "
            "host TEXT NOT NULL, app TEXT NOT NULL, url TEXT, body TEXT NOT NULL)"
        )
        connection.execute(
            "INSERT INTO reports VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ("old-report", "gone", report.created, "KeyError", "'old'", 1, "h", "", None, body),
        )
    started.start()
    try:
        [group] = started.get("/api/groups").json()["groups"]
        assert group["count"] == 1 and group["latest"]["id"] == "old-report"
        assert group["fingerprint"] == fingerprint(to_wire(report))
        assert ids(
            started.get(f"/api/reports?fingerprint={group['fingerprint']}").json()["reports"]
        ) == {"old-report"}
    finally:
        started.stop()
