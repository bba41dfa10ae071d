"""The "+" handles capture gives out, resolved against held frames; a frame's whole source."""

from __future__ import annotations

import json
from typing import Any, cast

from hypothesis import given
from hypothesis import strategies as st

from debugbroker import protocol
from debugbroker.agent.capture.exceptions import build_report
from debugbroker.agent.evals.held_frames import FrameRegistry
from debugbroker.agent.evals.lookup import answer_expand, answer_source, make_handle
from debugbroker.agent.options import Options
from debugbroker.protocol import ExpandRequest, FrameInfo, ReprNode, SourceRequest

OPTIONS = Options()


def held_report(**values: Any) -> tuple[FrameRegistry, FrameInfo]:
    registry = FrameRegistry(4, 10**8)

    def frame_with(**kwargs: Any) -> None:
        locals().update()  # the values live in kwargs
        raise ValueError("x")

    try:
        frame_with(**values)
    except ValueError as error:
        report = build_report(
            error, report_id="r", agent_id="a", options=OPTIONS, registry=registry
        )
    return registry, report.exceptions[-1].frames[-1]


def kwargs_node(frame: FrameInfo) -> ReprNode:
    return next(v.value for v in frame.locals if v.name == "kwargs")


def pair_value(node: ReprNode, key: str) -> ReprNode:
    return next(p.children[1] for p in node.children if p.children[0].text == repr(key))


def expand(registry: FrameRegistry, frame: FrameInfo, handle: str | None, offset: int) -> Any:
    assert frame.frame_id is not None and handle is not None
    request = ExpandRequest(request_id="q", frame_id=frame.frame_id, handle=handle, offset=offset)
    return answer_expand(registry, request, OPTIONS)


def test_depth_capped_and_nested_values_expand() -> None:
    deep: list[object] = [[[[[list(range(20))]]]]]
    registry, frame = held_report(deep=deep, table={f"k{n}": n for n in range(10)})
    node = kwargs_node(frame)
    capped = pair_value(node, "deep")
    while capped.children:
        capped = capped.children[0]
    assert capped.text == "[...]" and capped.more is not None
    result = expand(registry, frame, capped.more, 0)
    assert result.ok and result.node.kind == "list"
    table = pair_value(node, "table")
    assert table.omitted == 6 and table.more is not None
    page = expand(registry, frame, table.more, len(table.children)).node
    keys = [pair.children[0].text for pair in page.children]
    assert keys == [repr(f"k{n}") for n in range(4, 10)] and page.omitted == 0


def test_handles_refuse_masked_values_and_changed_ones() -> None:
    values = {"api_key": "K" * 100, "items": list(range(30))}
    registry, frame = held_report(**values)
    assert pair_value(kwargs_node(frame), "api_key").more is None
    secret = expand(registry, frame, json.dumps(["kwargs", 0, 1]), 0)  # the api_key value
    assert not secret.ok and "masked" in secret.error
    items = pair_value(kwargs_node(frame), "items")
    cast(
        list[object], values["items"]
    ).clear()  # the app changed the list after the report: "+" shows it now
    gone = expand(registry, frame, items.more, 8)
    assert gone.ok and gone.node.children == () and gone.node.omitted == 0
    assert not expand(registry, frame, json.dumps(["kwargs", 99, 1]), 0).ok
    assert not expand(registry, frame, json.dumps(["nope"]), 0).ok
    assert not expand(registry, frame, "[", 0).ok
    assert not expand(registry, frame, json.dumps(["kwargs", True]), 0).ok


def test_handles_refuse_values_masked_under_bytes_keys_and_in_header_pairs() -> None:
    values = {"raw": {b"password": "P" * 100}, "pairs": [("X-Api-Key", "K" * 100)]}
    registry, frame = held_report(**values)
    # ["kwargs", 0, 1] is the value of kwargs' first pair ("raw"); then its first pair's value.
    for handle in (["kwargs", 0, 1, 0, 1], ["kwargs", 1, 1, 0, 1]):
        answer = expand(registry, frame, json.dumps(handle), 0)
        assert not answer.ok and "masked" in answer.error, handle
    name = expand(registry, frame, json.dumps(["kwargs", 1, 1, 0, 0]), 0)
    assert name.ok and name.node.text == "'X-Api-Key'"


def test_framework_mappings_expand_every_item_with_secrets_masked() -> None:
    from werkzeug.datastructures import MultiDict

    items = [("tag", str(n)) for n in range(6)] + [("password", "P" * 10)]
    registry, frame = held_report(form=MultiDict(items))
    form = pair_value(kwargs_node(frame), "form")
    assert form.kind == "dict" and form.omitted == 3 and form.more is not None
    page = expand(registry, frame, form.more, len(form.children)).node
    shown = [(pair.children[0].text, pair.children[1].text) for pair in page.children]
    assert shown == [("'tag'", "'4'"), ("'tag'", "'5'"), ("'password'", "'********************'")]
    # Its items are reached by the same positions the renderer lists them at.
    secret = expand(registry, frame, json.dumps(["kwargs", 0, 1, 6, 1]), 0)
    assert not secret.ok and "masked" in secret.error


def test_source_of_a_held_frame_and_a_released_one() -> None:
    registry, frame = held_report(x=1)
    assert frame.frame_id is not None
    answer = answer_source(
        registry, SourceRequest(request_id="s", frame_id=frame.frame_id), OPTIONS
    )
    with open(__file__, encoding="utf-8") as handle:
        assert answer.ok and list(answer.lines) == handle.read().splitlines()
    assert answer.filename == __file__ and not answer.truncated
    registry.release_report("r")
    released = answer_source(
        registry, SourceRequest(request_id="s", frame_id=frame.frame_id), OPTIONS
    )
    assert not released.ok and "released" in (released.error or "")
    assert released.reason == protocol.RELEASED
    expand = ExpandRequest(request_id="e", frame_id=frame.frame_id, handle='["x"]')
    assert answer_expand(registry, expand, OPTIONS).reason == protocol.RELEASED


@given(st.text(), st.lists(st.integers(min_value=0, max_value=10**12), max_size=8))
def test_handles_are_exactly_compact_ascii_json(name: str, positions: list[int]) -> None:
    path: list[Any] = [name, *positions]
    expected = json.dumps(path, ensure_ascii=True, separators=(",", ":"))
    assert make_handle(path) == expected
    assert json.loads(make_handle(path)) == path
