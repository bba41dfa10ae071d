"""The "+" handles capture gives out, resolved against held frames; a frame's whole source."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, cast

from hypothesis import given
from hypothesis import strategies as st

from debugbroker import protocol
from debugbroker.agent.capture.exceptions import build_report
from debugbroker.agent.evals.held_frames import FrameRegistry
from debugbroker.agent.evals.lookup import answer_expand, answer_source
from debugbroker.agent.options import Options
from debugbroker.agent.reprs.tree import (
    Budget,
    LeafNodes,
    make_handle,
    represent_more,
    shared_leaves,
    variables_of,
)
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


def _filled(node: ReprNode, path: list[Any], base: int = 0) -> ReprNode:
    """The handles as a second walk over a finished tree gives them (how capture gave them
    before handles were made during the render): the oracle for the renderer's own."""
    start = 0 if node.kind == "pair" else base
    children = tuple(
        _filled(child, [*path, start + position]) for position, child in enumerate(node.children)
    )
    expandable = node.kind in ("str", "bytes", "list", "tuple", "set", "frozenset", "dict")
    more = node.more
    if more is None and node.omitted > 0 and expandable:
        handle = make_handle(path)
        more = handle if len(handle) <= 4_096 else None
    return replace(node, children=children, more=more)


_LEAVES = st.one_of(
    st.integers(-(10**30), 10**30),
    st.text(max_size=90),
    st.binary(max_size=90),
    st.none(),
    st.booleans(),
    st.sampled_from(["password=hunter2", "https://u:pw@host/x", "token", "key0"]),
)
_NAMES = st.sampled_from(["a", "password", "b", "api_key", "c", "key0"])
_VALUES = st.recursive(
    _LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=12),
        st.lists(inner, max_size=12).map(tuple),
        st.dictionaries(st.one_of(_NAMES, st.text(max_size=80), st.integers()), inner, max_size=7),
        st.tuples(_NAMES, inner),
        st.tuples(_NAMES.map(str.encode), inner),
    ),
    max_leaves=40,
)


@given(st.dictionaries(_NAMES, _VALUES, max_size=5))
def test_handles_made_while_rendering_match_a_walk_over_the_finished_tree(
    namespace: dict[str, Any],
) -> None:
    options = Options(repr_depth=3)
    leaves = LeafNodes()  # shared, as in one capture's frames
    with_handles = variables_of(namespace, options, Budget(10.0), handles=True, leaves=leaves)
    plain = variables_of(namespace, options, Budget(10.0), leaves=leaves)
    assert [v.name for v in with_handles] == [v.name for v in plain]
    for ours, bare in zip(with_handles, plain, strict=True):
        assert ours.value == _filled(bare.value, [bare.name])
        if bare.value.omitted and bare.value.kind in ("list", "dict", "str"):
            assert ours.value.more == make_handle([bare.name])


@given(st.lists(st.one_of(st.integers(), st.text(max_size=90)), min_size=1, max_size=300))
def test_expanded_pages_carry_the_handles_of_their_own_positions(items: list[Any]) -> None:
    offset = len(items) // 2
    path = ["items", 3, 1]
    node = represent_more(items, OPTIONS, offset, budget=Budget(10.0), path=list(path))
    bare = represent_more(items, OPTIONS, offset, budget=Budget(10.0))
    assert node == _filled(bare, path, base=offset)


@given(st.dictionaries(_NAMES, _VALUES, max_size=5), st.integers(0, 4_000))
def test_shared_leaves_give_the_tree_fresh_ones_give(namespace: dict[str, Any], size: int) -> None:
    """Leaves an earlier frame rendered (taken without ``node``'s call inside containers and
    dict pairs, and pairs of them) give the same nodes, handles and budget as rendering them
    afresh, also where the size budget runs out."""
    options = Options(repr_depth=3)
    # Secret-named keys whose values are shared leaves too: still masked.
    namespace = {**namespace, "z": {"a": 7, "password": 7, "b": "k", "api_key": "k"}}
    warm = LeafNodes()
    for _ in range(2):  # the second time, the pairs of two shared leaves are remembered too
        variables_of(namespace, options, Budget(10.0), handles=True, leaves=warm)
    shared_budget, fresh_budget = Budget(10.0, size), Budget(10.0, size)
    shared = variables_of(namespace, options, shared_budget, handles=True, leaves=warm)
    fresh = variables_of(namespace, options, fresh_budget, handles=True, leaves=LeafNodes())
    assert shared == fresh
    assert shared_budget.remaining == fresh_budget.remaining


def test_captures_with_the_same_options_share_bounded_leaves() -> None:
    """Leaves outlive a capture (an error that repeats shows the same small values), one
    ``LeafNodes`` per options, each kind cleared when full; the trees and budgets are those
    of fresh leaves."""
    options = Options(repr_items=5_000, repr_pairs=5_000)
    leaves = shared_leaves(options)
    assert shared_leaves(Options(repr_items=5_000, repr_pairs=5_000)) is leaves
    assert shared_leaves(Options(repr_items=4_000)) is not leaves
    large = {
        "numbers": list(range(5_000)),
        "names": [f"n{i}" for i in range(5_000)],
        "table": {f"k{i}": i for i in range(5_000)},
    }
    small = {"table": {"a": 1, "b": "x"}}
    for namespace in (large, small):
        for _ in range(3):  # leaves, then pairs of them, then pairs remembered
            shared_budget, fresh_budget = Budget(10.0, 10**7), Budget(10.0, 10**7)
            shared = variables_of(namespace, options, shared_budget, handles=True, leaves=leaves)
            fresh = variables_of(namespace, options, fresh_budget, handles=True, leaves=LeafNodes())
            assert shared == fresh
            assert shared_budget.remaining == fresh_budget.remaining
            assert all(len(kind) <= 1_024 for kind in (leaves.ints, leaves.strs, leaves.pairs))
    assert ("a", 1) in leaves.pairs and ("b", "x") in leaves.pairs
