"""Safe reprs: caps per kind, recursion and depth guards, hostile values, secret masking."""

from __future__ import annotations

import time
from collections import Counter, OrderedDict, deque, namedtuple
from collections.abc import Iterator, Mapping

from debugbroker import protocol
from debugbroker.agent.options import Options
from debugbroker.agent.reprs import safe_text
from debugbroker.agent.reprs import tree as reprs
from debugbroker.agent.reprs.secret_names import SecretNames, secret_pattern
from debugbroker.agent.reprs.tree import (
    SECRET_MASK,
    Budget,
    represent,
    represent_more,
    variables_of,
)
from debugbroker.protocol import EvalResult, ReprNode, format_node

OPTIONS = Options()


def encoded_size(node: ReprNode) -> int:
    return len(protocol.encode(EvalResult(request_id="r", ok=True, result=node)))


def test_scalars() -> None:
    assert represent(42, OPTIONS) == ReprNode(kind="number", type_name="int", text="42")
    assert represent(2.5, OPTIONS).text == "2.5"
    assert represent(1j, OPTIONS).kind == "number"
    assert represent(True, OPTIONS) == ReprNode(kind="bool", type_name="bool", text="True")
    assert represent(None, OPTIONS) == ReprNode(kind="none", type_name="NoneType", text="None")
    assert represent(b"ab", OPTIONS) == ReprNode(kind="bytes", type_name="bytes", text="b'ab'")
    assert represent(bytearray(b"x"), OPTIONS).text == "bytearray(b'x')"
    huge = represent(1 << 100_000, OPTIONS)
    assert huge.kind == "number" and "bits" in huge.text


def test_strings_are_cut_with_omitted_count() -> None:
    node = represent("a" * 100, OPTIONS)
    assert node.kind == "str"
    assert node.text == repr("a" * OPTIONS.repr_string)
    assert node.omitted == 100 - OPTIONS.repr_string
    assert represent(b"b" * 100, OPTIONS).omitted == 100 - OPTIONS.repr_string


def test_containers_are_capped() -> None:
    node = represent(list(range(20)), OPTIONS)
    assert node.kind == "list"
    assert [child.text for child in node.children] == [str(i) for i in range(8)]
    assert node.omitted == 12
    assert represent((1, 2), OPTIONS).kind == "tuple"
    assert represent({1}, OPTIONS).kind == "set"
    assert represent(frozenset({1}), OPTIONS).kind == "frozenset"
    queue = represent(deque(range(10)), OPTIONS)
    assert (queue.kind, queue.type_name, queue.omitted) == ("list", "deque", 2)


def test_dicts_show_pairs() -> None:
    node = represent({i: str(i) for i in range(10)}, OPTIONS)
    assert node.kind == "dict"
    assert len(node.children) == OPTIONS.repr_pairs
    assert node.omitted == 10 - OPTIONS.repr_pairs
    pair = node.children[0]
    assert pair.kind == "pair"
    assert [child.text for child in pair.children] == ["0", "'0'"]
    assert represent(OrderedDict(a=1), OPTIONS).type_name == "OrderedDict"
    assert represent(Counter("aab"), OPTIONS).kind == "dict"


def test_secret_keys_in_dicts_are_masked() -> None:
    node = represent({"password": "hunter2", "user": "bob"}, OPTIONS)
    assert node.children[0].children[1].text == SECRET_MASK
    assert node.children[1].children[1].text == "'bob'"


class Frozen(Mapping[str, int]):
    def __getitem__(self, key: str) -> int:
        return {"a": 1}[key]

    def __iter__(self) -> Iterator[str]:
        return iter(["a"])

    def __len__(self) -> int:
        return 1


class BrokenMapping(Frozen):
    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("no iteration today")


def test_mapping_likes_use_items() -> None:
    node = represent(Frozen(), OPTIONS)
    assert (node.kind, node.type_name) == ("dict", "Frozen")
    assert node.children[0].children[0].text == "'a'"
    broken = represent(BrokenMapping(), OPTIONS)
    assert broken.kind == "broken"
    assert "RuntimeError: no iteration today" in broken.text


def test_depth_cap_and_deep_nesting() -> None:
    nested: list[object] = []
    for _ in range(500):
        nested = [nested]
    started = time.monotonic()
    node = represent(nested, OPTIONS)
    assert time.monotonic() - started < 1
    depth = 0
    while node.children:
        node = node.children[0]
        depth += 1
    assert depth == OPTIONS.repr_depth
    assert node.kind == "list" and node.text == "[...]" and node.omitted == 1
    deep = represent(nested, Options(repr_depth=10_000))
    assert deep.kind == "list"
    assert encoded_size(deep) < 100_000


def test_recursion_guard() -> None:
    items: list[object] = [1]
    items.append(items)
    node = represent(items, OPTIONS)
    assert node.children[1] == ReprNode(kind="recursion", type_name="list", text="[...]")
    mapping: dict[str, object] = {}
    mapping["self"] = mapping
    inner = represent(mapping, OPTIONS).children[0].children[1]
    assert inner.kind == "recursion" and inner.text == "{...}"


class BadRepr:
    def __repr__(self) -> str:
        raise ValueError("cannot show")


class BadStrError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("nor this")


class DoubleBad:
    def __repr__(self) -> str:
        raise BadStrError()


class ExitRepr:
    def __repr__(self) -> str:
        raise SystemExit(1)


class HugeRepr:
    def __repr__(self) -> str:
        return "x" * 5_000_000


class SlowRepr:
    def __repr__(self) -> str:
        time.sleep(0.02)
        return "slow"


class BrokenClass:
    @property  # type: ignore[misc]
    def __class__(self) -> type:
        raise RuntimeError("no class")

    def __getattr__(self, name: str) -> object:
        raise RuntimeError(f"no {name}")


class NonStrRepr:
    def __repr__(self) -> str:
        return 42  # type: ignore[return-value]


class SurrogateRepr:
    def __repr__(self) -> str:
        return "bad \ud800 text"


def test_raising_repr_is_broken() -> None:
    node = represent(BadRepr(), OPTIONS)
    assert node == ReprNode(
        kind="broken", type_name="BadRepr", text="<broken repr (ValueError: cannot show)>"
    )
    double = represent(DoubleBad(), OPTIONS)
    assert double.kind == "broken"
    assert "BadStrError" in double.text and "str() failed" in double.text
    assert represent(NonStrRepr(), OPTIONS).kind == "broken"
    assert represent(ExitRepr(), OPTIONS).text == "<broken repr (SystemExit: 1)>"


def test_broken_class_and_getattr() -> None:
    node = represent(BrokenClass(), OPTIONS)
    assert node.type_name == "BrokenClass"
    assert node.kind == "object"
    in_list = represent([BrokenClass()], OPTIONS)
    assert in_list.children[0].type_name == "BrokenClass"


def test_megabyte_repr_is_cut() -> None:
    started = time.monotonic()
    node = represent(HugeRepr(), OPTIONS)
    assert time.monotonic() - started < 1
    assert len(node.text) <= OPTIONS.repr_text + 3
    assert encoded_size(node) < 3 * OPTIONS.repr_text


def test_surrogates_are_escaped_so_the_value_encodes() -> None:
    node = represent(SurrogateRepr(), OPTIONS)
    assert "\\ud800" in node.text
    encoded_size(node)


def test_time_budget_skips_the_rest() -> None:
    namespace = {f"v{i}": SlowRepr() for i in range(40)}
    started = time.monotonic()
    variables = variables_of(namespace, OPTIONS, Budget(0.05))
    assert time.monotonic() - started < 0.5
    assert len(variables) == 40
    assert variables[0].value.text == "slow"
    assert variables[-1].value.text == "<skipped: time budget>"


def test_size_budget_bounds_the_encoding() -> None:
    namespace = {f"v{i}": [HugeRepr()] * 8 for i in range(50)}
    budget = Budget(10, size=64 * 1024)
    variables = variables_of(namespace, OPTIONS, budget)
    assert variables[-1].value.text == "<skipped: size budget>"
    size = sum(encoded_size(variable.value) for variable in variables)
    assert size < 200 * 1024


class MyDict(dict[str, int]):
    def __repr__(self) -> str:
        return "MyDict!"


class MyList(list[int]):
    def __iter__(self) -> Iterator[int]:
        raise RuntimeError("overridden iteration must not run")

    def __len__(self) -> int:
        raise RuntimeError("overridden len must not run")


Point = namedtuple("Point", "x y")


def test_subclasses() -> None:
    assert represent(MyDict(a=1), OPTIONS) == ReprNode(
        kind="object", type_name="MyDict", text="MyDict!"
    )
    node = represent(MyList([1, 2]), OPTIONS)
    assert (node.kind, node.type_name, len(node.children)) == ("list", "MyList", 2)
    assert represent(Point(1, 2), OPTIONS).text == "Point(x=1, y=2)"


def test_represent_more() -> None:
    node = represent_more(list(range(20)), OPTIONS, 8)
    assert [child.text for child in node.children] == [str(i) for i in range(8, 16)]
    assert node.omitted == 4
    text = represent_more("a" * 75 + "b" * 100, OPTIONS, 75)
    assert text.text == repr("b" * 70) and text.omitted == 30
    pairs = represent_more({i: i for i in range(6)}, OPTIONS, 4)
    assert [pair.children[0].text for pair in pairs.children] == ["4", "5"]
    assert represent_more(42, OPTIONS, 3).text == "42"


def test_variables_of_caps_orders_and_masks() -> None:
    namespace = {f"name{i}": i for i in range(60)}
    namespace = {"API_KEY": 1, "db_password": 2, "csrftoken": 3, **namespace}
    variables = variables_of(namespace, OPTIONS)
    assert len(variables) == OPTIONS.max_locals
    assert [v.name for v in variables[:4]] == ["API_KEY", "db_password", "csrftoken", "name0"]
    for variable in variables[:3]:
        assert variable.value == ReprNode(kind="str", type_name="str", text=SECRET_MASK)
    assert variables[3].value.text == "0"


def test_format_node() -> None:
    assert format_node(represent([1, "a", {"k": (2,)}], OPTIONS)) == "[1, 'a', {'k': (2,)}]"
    assert format_node(represent(list(range(10)), OPTIONS)).endswith("...2 more]")
    assert format_node(represent(deque([1]), OPTIONS)) == "deque([1])"


def test_secret_names_remember_their_answers_and_stay_right() -> None:
    secret = secret_pattern(Options(secret_names=("tok(en)?", "passw")))
    assert isinstance(secret, SecretNames)
    for _ in range(2):  # the second round answers from what the first remembered
        assert secret.search("api_TOKEN") is True and secret.search("PASSWORD") is True
        assert secret.search("order_id") is None and secret.search("") is None
    # Past the remembered names it keeps answering by searching.
    for n in range(SecretNames.REMEMBERED + 10):
        assert secret.search(f"name{n}") is None
    assert secret.search("my_tok_here") is True


def test_exact_type_names_are_the_exact_shapes_types() -> None:
    """``type_name_of`` and the renderer's scalar fast path name the types shown by shape."""
    assert set(safe_text.EXACT_NAMES) == set(reprs.EXACT_SHAPES)
    assert all(name == tp.__name__ for tp, name in safe_text.EXACT_NAMES.items())


def test_framework_multi_dicts_and_headers_are_mappings_masked_by_item_name() -> None:
    from django.conf import settings

    if not settings.configured:
        settings.configure()
    from django.http import QueryDict
    from django.utils.datastructures import MultiValueDict
    from starlette.datastructures import FormData, QueryParams
    from starlette.datastructures import Headers as StarletteHeaders
    from werkzeug.datastructures import EnvironHeaders, Headers, ImmutableMultiDict, MultiDict

    cases: list[tuple[object, str]] = [
        (
            ImmutableMultiDict([("password", "hunter2"), ("tag", "a"), ("tag", "b")]),
            f"ImmutableMultiDict({{'password': {SECRET_MASK}, 'tag': 'a', 'tag': 'b'}})",
        ),
        (MultiDict({"api-key": "K"}), f"MultiDict({{'api-key': {SECRET_MASK}}})"),
        (
            EnvironHeaders({"HTTP_AUTHORIZATION": "Bearer T", "HTTP_COOKIE": "s=1", "HTTP_X": "1"}),
            f"EnvironHeaders({{'Authorization': {SECRET_MASK}, 'Cookie': {SECRET_MASK}, "
            "'X': '1'})",
        ),
        (
            Headers([("Set-Cookie", "s=1"), ("Vary", "x")]),
            f"Headers({{'Set-Cookie': {SECRET_MASK}, 'Vary': 'x'}})",
        ),
        (
            QueryDict("pin=1234&page=2&page=3"),
            f"QueryDict({{'pin': {SECRET_MASK}, 'page': ['2', '3']}})",
        ),
        (MultiValueDict({"card": ["4111"]}), f"MultiValueDict({{'card': {SECRET_MASK}}})"),
        (
            StarletteHeaders(raw=[(b"authorization", b"Bearer T"), (b"x-a", b"1")]),
            f"Headers({{'authorization': {SECRET_MASK}, 'x-a': '1'}})",
        ),
        (
            FormData([("password", "hunter2"), ("tag", "a"), ("tag", "b")]),
            f"FormData({{'password': {SECRET_MASK}, 'tag': 'a', 'tag': 'b'}})",
        ),
        (QueryParams("key=K&q=x"), f"QueryParams({{'key': {SECRET_MASK}, 'q': 'x'}})"),
    ]
    for value, shown in cases:
        node = represent(value, OPTIONS)
        assert node.kind == "dict", value
        assert format_node(node) == shown


def test_cookie_jars_and_header_pair_lists_are_masked_by_name() -> None:
    from http.cookies import SimpleCookie

    cookies: SimpleCookie = SimpleCookie("sessionid=S3SS; theme=dark")
    shown = format_node(represent(cookies, OPTIONS))
    assert "S3SS" not in shown and "dark" in shown
    asgi = [(b"authorization", b"Bearer T"), (b"host", b"h"), ("X-Api-Key", "K")]
    assert format_node(represent(asgi, OPTIONS)) == (
        f"[(b'authorization', {SECRET_MASK}), (b'host', b'h'), ('X-Api-Key', {SECRET_MASK})]"
    )
    assert format_node(represent(("a", "b"), OPTIONS)) == "('a', 'b')"


def test_bytes_keys_are_masked_like_str_keys() -> None:
    node = represent({b"password": b"hunter2", b"user": b"bob"}, OPTIONS)
    assert format_node(node) == f"{{b'password': {SECRET_MASK}, b'user': b'bob'}}"


def test_dataclass_and_attrs_fields_are_masked_by_name() -> None:
    import dataclasses

    import attrs

    @dataclasses.dataclass
    class Login:
        user: str
        password: str
        tries: list[int] = dataclasses.field(default_factory=lambda: [1])
        hidden: str = dataclasses.field(default="h", repr=False)

    @attrs.define
    class Card:
        holder: str
        number: str
        pin: int

    @dataclasses.dataclass
    class Plain:
        user: str

    assert represent(Login("bob", "hunter2"), OPTIONS).text == (
        f"{Login.__qualname__}(user='bob', password={SECRET_MASK}, tries=[1])"
    )
    assert represent(Card("bob", "4111", 1234), OPTIONS).text == (
        f"{Card.__qualname__}(holder='bob', number='4111', pin={SECRET_MASK})"
    )
    # Nothing secret by name: the class's own repr, masked by value.
    assert represent(Plain("bob"), OPTIONS).text == repr(Plain("bob"))
    assert represent(Plain("x token=T"), OPTIONS).text.endswith("user='x token=<masked>')")

    @dataclasses.dataclass
    class Loop:
        secret: str
        me: object = None

    loop = Loop("s")
    loop.me = loop
    assert "Loop(...)" in represent(loop, OPTIONS).text


def test_strings_and_object_reprs_are_masked_by_value_and_slices_stay_masked() -> None:
    url = "postgres://app:PASSWORD@db/app"
    assert represent(url, OPTIONS).text == "'postgres://app:<masked>@db/app'"

    class Request:
        def __repr__(self) -> str:
            return "<Request 'http://h/?api_token=T0K' [GET]>"

    assert represent(Request(), OPTIONS).text == "<Request 'http://h/?api_token=<masked>' [GET]>"
    # A secret cut by the first slice does not show in the "+" slice either.
    long = "x" * 70 + "token=" + "S" * 100
    first = represent(long, OPTIONS)
    assert "S" not in first.text
    more = represent_more(long, OPTIONS, 70)
    assert "S" not in more.text and more.text == "'token=<masked>'"
    assert represent(b"a=1&password=p", OPTIONS).text == "b'a=1&password=<masked>'"


def test_long_strings_are_masked_around_the_part_shown() -> None:
    # Over 64 KiB only the shown slice and a margin around it are scanned: still masked at
    # the start, in a "+" slice, and across the cut; the length stays the original's.
    long = "token=" + "S" * 90 + "&" + "x" * 70_000 + " api_key=" + "K" * 200
    first = represent(long, OPTIONS)
    assert first.text == repr("token=<masked>&" + "x" * 55) and first.omitted == len(long) - 70
    tail = represent_more(long, OPTIONS, len(long) - 210)
    assert "K" not in tail.text and "api_key=<masked>" in tail.text
    data = b"password=" + b"P" * 100 + b"&" + b"y" * 70_000
    assert represent(data, OPTIONS).text.startswith("b'password=<masked>&yyy")


def test_types_that_cannot_be_inspected_are_shown_by_their_repr() -> None:
    class Bogus:
        __dataclass_fields__ = "not a dict"

        def __repr__(self) -> str:
            return "<Bogus password=P>"

    class HashlessMeta(type):
        def __hash__(cls) -> int:
            raise RuntimeError("no hash")

    class Hashless(metaclass=HashlessMeta):
        def __repr__(self) -> str:
            return "<Hashless token=T>"

    assert represent(Bogus(), OPTIONS).text == "<Bogus password=<masked>>"
    assert represent(Hashless(), OPTIONS).text == "<Hashless token=<masked>>"
