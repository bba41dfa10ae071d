"""Paste's ``__traceback_hide__`` rules, library frames, and the agent's own frame hidden."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from debugbroker.agent.capture.exceptions import build_report
from debugbroker.agent.capture.hiding import hidden_flags
from debugbroker.agent.middleware import DebuggedApplication
from debugbroker.agent.options import Options
from debugbroker.protocol import FrameInfo
from tests.conftest import Broker, wait_for

# --- the rules on marker lists ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("markers", "hidden"),
    [
        ([None, None, None], [False, False, False]),
        ([None, True, None], [False, True, False]),
        ([None, 1, "", None], [False, True, False, False]),  # any true value hides its frame
        ([None, None, "before", None], [True, True, False, False]),
        ([None, "before_and_this", None], [True, True, False]),
        ([None, "after", None, None], [False] * 4),  # the last one hidden: show all
        ([None, "after", None, "reset", None], [False, False, True, False, False]),
        ([None, "after_and_this", None, "reset_and_this", None], [False, True, True, True, False]),
        (["before", "after", True, "reset", None], [False, False, True, False, False]),
        ([None, True], [False, False]),  # the error happened in hidden code: show everything
        (["before_and_this"], [False]),
        ([], []),
        ([None, "unknown word", None], [False, True, False]),  # a true value like True
    ],
)
def test_paste_rules(markers: list[object], hidden: list[bool]) -> None:
    assert hidden_flags(markers) == hidden


def test_a_marker_whose_bool_raises_does_not_hide() -> None:
    class Hostile:
        def __bool__(self) -> bool:
            raise RuntimeError("no")

    assert hidden_flags([None, Hostile(), None]) == [False, False, False]


# --- on real frames -----------------------------------------------------------------------------


def innermost() -> None:
    raise ValueError("deep")


def through(marker: object, then: Callable[[], None]) -> Callable[[], None]:
    def frame_with_marker() -> None:
        __traceback_hide__ = marker  # noqa: F841 - read by capture
        then()

    return frame_with_marker


def outer_frames(report_frames: tuple[FrameInfo, ...]) -> list[tuple[str, bool]]:
    return [(f.function.rsplit(".", 1)[-1], f.hidden) for f in report_frames]


def run(function: Callable[[], None]) -> list[tuple[str, bool]]:
    try:
        function()
    except ValueError as error:
        report = build_report(error, report_id="r", agent_id="a", options=Options(), registry=None)
        return outer_frames(report.exceptions[-1].frames)[1:]  # without run() itself
    raise AssertionError("did not raise")


def plain_frame(then: Callable[[], None]) -> Callable[[], None]:
    def plain() -> None:
        then()

    return plain


def test_markers_on_real_frames() -> None:
    chain = plain_frame(through("before_and_this", plain_frame(through(True, innermost))))
    assert run(chain) == [
        ("plain", True),
        ("frame_with_marker", True),
        ("plain", False),
        ("frame_with_marker", True),
        ("innermost", False),
    ]
    after = through("after", plain_frame(through("reset", plain_frame(innermost))))
    assert run(after) == [
        ("frame_with_marker", False),
        ("plain", True),
        ("frame_with_marker", False),
        ("plain", False),
        ("innermost", False),
    ]


def test_rules_apply_per_exception() -> None:
    def handler() -> None:
        __traceback_hide__ = "before"  # noqa: F841
        try:
            through(True, innermost)()
        except ValueError as error:
            raise KeyError("outer") from error

    try:
        handler()
    except KeyError as error:
        report = build_report(error, report_id="r", agent_id="a", options=Options(), registry=None)
    cause, raised = report.exceptions
    assert outer_frames(cause.frames) == [
        ("handler", False),
        ("frame_with_marker", True),
        ("innermost", False),
    ]
    assert outer_frames(raised.frames) == [
        ("test_rules_apply_per_exception", True),
        ("handler", False),
    ]


# --- the agent's own frame, through a real broker ------------------------------------------------


def test_middleware_frame_is_hidden_and_library_frames_marked(broker: Broker) -> None:
    import json

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        return [json.dumps(json.loads(environ["QUERY_STRING"])).encode()]

    options = Options(broker_url=broker.zmq_url, secret=broker.secret, app_name="hiding")
    wrapped = DebuggedApplication(app, options=options)
    marker = uuid.uuid4().hex
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": f"/{marker}",
        "QUERY_STRING": "{broken",
        "SERVER_NAME": "test",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
        "wsgi.errors": io.StringIO(),
        "wsgi.input": io.BytesIO(),
    }
    body = b"".join(wrapped(environ, lambda status, headers, exc_info=None: lambda data: None))
    assert b"JSONDecodeError" in body or b"Expecting" in body

    def stored() -> dict[str, Any] | None:
        for summary in broker.reports():
            if summary["url"] and marker in summary["url"]:
                return broker.report(summary["id"])
        return None

    report = wait_for(stored, what="the report")
    frames = report["exceptions"][-1]["frames"]
    first = frames[0]
    assert first["filename"].endswith("middleware.py") and first["hidden"]
    # The agent's own frame is the agent's business: no locals shown, no console on it.
    assert first["locals"] == [] and first["frame_id"] is None
    app_frame = next(f for f in frames if f["function"].endswith("app"))
    assert not app_frame["hidden"] and not app_frame["is_library"]
    assert [v["name"] for v in app_frame["locals"]] == ["environ", "start_response", "json"]
    assert app_frame["frame_id"] is not None
    # The environ is the Request panel's: in the frames it is {...}, and "+" lists it.
    shown = app_frame["locals"][0]["value"]
    assert (shown["kind"], shown["text"], shown["children"]) == ("dict", "{...}", [])
    assert shown["omitted"] == len(environ) and shown["more"]
    assert ["PATH_INFO", f"/{marker}"] in report["request"]["environ"]
    path = f"/api/reports/{report['id']}/frames/{app_frame['index']}/expand"
    answer = broker.post(path, {"handle": shown["more"], "offset": 0})
    assert answer.status == 200, answer.text
    keys = [pair["children"][0]["text"] for pair in answer.json()["node"]["children"]]
    assert "'PATH_INFO'" in keys
    library = [f for f in frames if "json" in f["filename"]]
    assert library and all(f["is_library"] and not f["hidden"] for f in library)
