"""The request panel: every table filled, secrets masked by name, the body never read."""

from __future__ import annotations

import io
from typing import Any

from flask import Flask
from flask import request as flask_request
from werkzeug.test import EnvironBuilder

from debugbroker.agent.capture.exceptions import build_report
from debugbroker.agent.capture.request import MASK, build_request_info
from debugbroker.agent.middleware import DebuggedApplication
from debugbroker.agent.options import DEFAULT_SECRET_NAMES, Options
from debugbroker.agent.reprs.secret_names import looks_secret
from debugbroker.agent.reprs.tree import represent, variables_of
from debugbroker.protocol import format_node
from tests.conftest import Broker, wait_for


def environ(**kwargs: Any) -> dict[str, Any]:
    built: dict[str, Any] = EnvironBuilder(**kwargs).get_environ()
    return built


def test_every_table_with_secrets_masked() -> None:
    env = environ(
        path="/pay",
        method="POST",
        query_string="page=2&api_key=K3Y&token=T0K&q=a+b",
        headers={
            "Authorization": "Basic dXNlcjpwYXNz",
            "X-Api-Key": "xyz",
            "Cookie": 'sessionid=S3SS; theme="dark"; csrftoken=C5RF',
            "Accept": "text/html",
        },
        data={"amount": "12", "password": "hunter2"},
    )
    info = build_request_info(env, Options())
    assert info is not None
    assert info.method == "POST"
    assert info.url == f"http://localhost/pay?page=2&api_key={MASK}&token={MASK}&q=a+b"
    assert dict(info.query) == {"page": "2", "api_key": MASK, "token": MASK, "q": "a b"}
    headers = dict(info.headers)
    assert headers["Authorization"] == f"Basic {MASK}" and headers["X-Api-Key"] == MASK
    assert headers["Cookie"] == f"sessionid={MASK}; theme={MASK}; csrftoken={MASK}"
    assert headers["Accept"] == "text/html"
    assert dict(info.cookies) == {"sessionid": MASK, "theme": "dark", "csrftoken": MASK}
    # The app did not parse the form, and the agent never reads the body.
    assert info.form == () and "never reads the body" in info.form_note
    assert env["wsgi.input"].tell() == 0
    env_table = dict(info.environ)
    assert env_table["HTTP_AUTHORIZATION"] == MASK
    assert env_table["QUERY_STRING"] == f"page=2&api_key={MASK}&token={MASK}&q=a+b"
    assert env_table["REQUEST_METHOD"] == "POST"
    assert env_table["wsgi.input"].startswith("<")
    for secret in ("K3Y", "T0K", "dXNlcjpwYXNz", "xyz", "S3SS", "C5RF", "hunter2"):
        assert secret not in repr(info)


def test_parsed_form_is_shown_masked() -> None:
    env = environ(method="POST", data={"amount": "12", "password": "hunter2", "tag": ["a", "b"]})
    from werkzeug.wrappers import Request

    parsed = Request(env)
    assert parsed.form["amount"] == "12"  # the app parsed it
    info = build_request_info(env, Options())
    assert info is not None and info.form_note == ""
    assert list(info.form) == [
        ("amount", "12"),
        ("password", MASK),
        ("tag", "a"),
        ("tag", "b"),
    ]


def test_patterns_are_configurable() -> None:
    options = Options(secret_names=(*DEFAULT_SECRET_NAMES, "ssn", "^card$"))
    env = environ(query_string="ssn=123&card=4111&cards=2&password=x")
    info = build_request_info(env, options)
    assert info is not None
    assert dict(info.query) == {"ssn": MASK, "card": MASK, "cards": "2", "password": MASK}
    only_pin = Options(secret_names=("pin",))
    info = build_request_info(env, only_pin)
    assert info is not None and dict(info.query)["password"] == "x"
    names = variables_of({"pin": 1234, "password": "shown", "ssn": 1}, only_pin)
    assert [(v.name, v.value.text) for v in names] == [
        ("pin", "'********************'"),
        ("password", "'shown'"),
        ("ssn", "1"),
    ]
    assert looks_secret("db_password") and looks_secret("Authorization")
    assert looks_secret("oauth_state") and not looks_secret("author")
    assert looks_secret("key") and not looks_secret("passenger_count")
    # A broken pattern falls back to the defaults: masking is never switched off by mistake.
    assert looks_secret("password", Options(secret_names=("(unclosed",)))


def test_caps_keep_the_panel_small() -> None:
    env = environ(query_string="&".join(f"p{n}={'v' * 5000}" for n in range(300)))
    for n in range(500):
        env[f"HTTP_X_HEADER_{n}"] = "h" * 5000
    info = build_request_info(env, Options())
    assert info is not None
    assert len(info.query) <= 100 and len(info.headers) <= 100
    total = sum(
        len(a) + len(b) for table in (info.query, info.headers, info.environ) for a, b in table
    )
    assert total < 300 * 1024
    assert all(len(value) < 1100 for _, value in info.query)


class IntLike(int):
    def __repr__(self) -> str:
        return "IntLike!"


class Meta(type):
    def __repr__(cls) -> str:
        return "a class with its own metaclass repr"


class Plain:
    pass


LongName = type("L" * 300, (), {})  # CPython's own repr, over the test's repr_text


def test_environ_values_read_as_their_reprs() -> None:
    """Plain values take a shortcut (their builtin repr); it must read exactly like the
    representation every other value gets."""
    values: list[object] = [True, False, None, 1.5, float("nan"), 7, -(2**63), 2**63, 2**70]
    values += [(1, 0), (), (1, "a"), (True, 1), tuple(range(20)), IntLike(3), (IntLike(3),)]
    values += [object(), io.BytesIO(), IntLike, type, len, test_environ_values_read_as_their_reprs]
    values += [Meta("WithMeta", (), {}), Plain(), Plain, LongName()]
    env = environ()
    for position, value in enumerate(values):
        env[f"x.value{position:02}"] = value
    options = Options(repr_text=100)
    shown = dict(build_request_info(env, options).environ)  # type: ignore[union-attr]
    for position, value in enumerate(values):
        assert shown[f"x.value{position:02}"] == format_node(represent(value, options)), value


def test_hostile_environ_values_never_break_it() -> None:
    class Hostile:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    class HostileRequest:
        @property
        def __dict__(self) -> Any:  # type: ignore[override]
            raise RuntimeError("no dict")

    env = environ(method="POST", data={"a": "1"})
    env["weird"] = Hostile()
    env["werkzeug.request"] = HostileRequest()
    env[42] = "not a str key"  # type: ignore[index]
    info = build_request_info(env, Options())
    assert info is not None
    assert "broken repr" in dict(info.environ)["weird"]
    assert info.form == () and info.form_note


def test_flask_form_reaches_the_broker_masked(broker: Broker) -> None:
    flask_app = Flask("request_panel")
    flask_app.config["PROPAGATE_EXCEPTIONS"] = True  # as in debug mode

    @flask_app.post("/order")
    def order() -> str:
        amount = flask_request.form["amount"]
        card_token = flask_request.form["card_token"]  # noqa: F841 - masked local
        return str(1 / int(amount))

    options = Options(broker_url=broker.zmq_url, secret=broker.secret, app_name="request-panel")
    wrapped = DebuggedApplication(flask_app.wsgi_app, options=options)
    env = environ(
        path="/order",
        method="POST",
        data={"amount": "0", "card_token": "tok_visa"},
        headers={"Cookie": "theme=dark"},
    )
    env["wsgi.errors"] = io.StringIO()
    body = b"".join(wrapped(env, lambda status, headers, exc_info=None: lambda data: None))
    assert b"ZeroDivisionError" in body

    def stored() -> dict[str, Any] | None:
        for summary in broker.reports():
            if summary["url"] and summary["url"].endswith("/order"):
                return broker.report(summary["id"])
        return None

    report = wait_for(stored, what="the report")
    request = report["request"]
    assert request["method"] == "POST"
    assert [tuple(pair) for pair in request["form"]] == [("amount", "0"), ("card_token", MASK)]
    assert [tuple(pair) for pair in request["cookies"]] == [("theme", "dark")]
    assert "tok_visa" not in str(report)
    frame = report["exceptions"][-1]["frames"][-1]
    local_names = {v["name"]: v["value"]["text"] for v in frame["locals"]}
    assert local_names["card_token"] == "'********************'"


def test_capture_accepts_the_request() -> None:
    info = build_request_info(environ(path="/x"), Options())
    report = build_report(
        ValueError("x"), report_id="r", agent_id="a", options=Options(), registry=None, request=info
    )
    assert report.request is not None and report.request.url == "http://localhost/x"


def test_values_are_masked_by_content_in_every_table() -> None:
    env = environ(
        path="/pay",
        query_string="pin=1234&api-key=K&key=K2&pass=P&page=2",
        headers={"Referer": "https://u:REFPASS@shop.example/cart?session=S3&x=1"},
        data={"note": "call me token=T0K"},
        method="POST",
    )
    env["DATABASE_URL"] = "postgres://user:DBPASS@db:5432/app"  # wsgiref copies os.environ
    from werkzeug.wrappers import Request

    Request(env).form  # noqa: B018 - the app parsed its form
    info = build_request_info(env, Options())
    assert info is not None
    everything = repr(info)
    for secret in ("1234", "'K'", "K2", "'P'", "REFPASS", "S3", "T0K", "DBPASS"):
        assert secret not in everything, secret
    assert dict(info.query) == {
        "pin": MASK,
        "api-key": MASK,
        "key": MASK,
        "pass": MASK,
        "page": "2",
    }
    assert info.url.endswith(f"/pay?pin={MASK}&api-key={MASK}&key={MASK}&pass={MASK}&page=2")
    assert dict(info.headers)["Referer"] == (
        f"https://u:{MASK}@shop.example/cart?session={MASK}&x=1"
    )
    assert dict(info.environ)["DATABASE_URL"] == f"postgres://user:{MASK}@db:5432/app"
    assert dict(info.form)["note"] == f"call me token={MASK}"


def test_remembered_pairs_give_the_same_panel_and_stay_bounded() -> None:
    """A repeat of a request is shown from remembered pairs: the same panel, masked the same
    way, per set of secret names; the memory of pairs is bounded."""
    from debugbroker.agent.capture import request as request_module

    env = environ(
        path="/pay",
        query_string="page=2&api_key=K3Y",
        headers={"Referer": "https://u:REFPASS@shop.example/?session=S3", "X-Plan": "gold"},
    )
    env["DATABASE_URL"] = "postgres://user:DBPASS@db:5432/app"
    first = build_request_info(env, Options())
    request_module._shown_pairs.clear()  # noqa: SLF001
    fresh = build_request_info(env, Options())
    assert first == fresh == build_request_info(env, Options())  # the last one remembered
    assert first is not None and "REFPASS" not in repr(first) and "DBPASS" not in repr(first)
    other = build_request_info(env, Options(secret_names=("plan",)))
    assert other is not None and dict(other.headers)["X-Plan"] == MASK
    assert dict(first.headers)["X-Plan"] == "gold"
    cap = request_module._MAX_REMEMBERED_PAIRS  # noqa: SLF001
    for number in range(cap + 10):
        env[f"HTTP_X_N{number}"] = str(number)
    build_request_info(env, Options())
    assert len(request_module._shown_pairs) <= cap  # noqa: SLF001
