"""The WSGI middleware with real failing apps: the 500 answers, the log, the broker link."""

from __future__ import annotations

import html
import http.client
import io
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import GeneratorType
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import flask
import pytest
import zmq
from werkzeug.test import Client, TestResponse

from debugbroker import DebuggedApplication, protocol
from debugbroker.agent import Options
from debugbroker.agent.integrations import frameworks
from debugbroker.agent.process import get_transport
from debugbroker.protocol import Hello, Report, ReportMessage
from tests.conftest import broker_socket, proven_welcome

DEADLINE = 10.0
DASHBOARD = "http://dash.live:9999"
REPORT_URL = re.compile(r"^(?P<base>.+)/#/reports/(?P<id>[0-9a-f]{32})$")

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class LiveBroker:
    """A fake broker on a thread: welcomes every hello and keeps the reports it gets."""

    def __init__(self) -> None:
        self.context = zmq.Context()
        self.socket = broker_socket(self.context, "s3cret")  # as the real broker's
        self.url = f"tcp://127.0.0.1:{self.socket.bind_to_random_port('tcp://127.0.0.1')}"
        self.reports: list[Report] = []
        self.changed = threading.Condition()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            if not self.socket.poll(50):
                continue
            identity, payload = self.socket.recv_multipart()
            message = protocol.decode(payload)
            if isinstance(message, Hello):
                reply = protocol.encode(proven_welcome("s3cret", message, DASHBOARD + "/"))
                self.socket.send_multipart([identity, reply])
            elif isinstance(message, ReportMessage):
                with self.changed:
                    self.reports.append(message.report)
                    self.changed.notify_all()

    def report(self, report_id: str) -> Report:
        """The report with this id, waiting for it to arrive."""
        with self.changed:
            found = self.changed.wait_for(
                lambda: any(r.id == report_id for r in self.reports), DEADLINE
            )
            assert found, f"report {report_id} never reached the broker"
            return next(r for r in self.reports if r.id == report_id)

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(DEADLINE)
        self.socket.close(linger=0)
        self.context.term()


@pytest.fixture
def broker() -> Iterator[LiveBroker]:
    live = LiveBroker()
    yield live
    live.close()


@pytest.fixture
def make_options() -> Iterator[Callable[..., Options]]:
    """Options for one test (a fresh transport each), closed afterwards."""
    made: list[Options] = []

    def make(broker_url: str | None = None, **overrides: Any) -> Options:
        options = Options(
            broker_url=broker_url or f"tcp://127.0.0.1:{free_port()}",  # nobody listens
            secret="s3cret",
            dashboard_url="http://dash.down:8780",
            **overrides,
        )
        made.append(options)
        return options

    yield make
    for options in made:
        get_transport(options).close()


def connected_options(broker: LiveBroker, make: Callable[..., Options]) -> Options:
    options = make(broker.url)
    assert get_transport(options).wait_connected(DEADLINE), "the fake broker did not welcome"
    return options


def raising_app(message: str = "boom") -> Callable[[Environ, StartResponse], Iterable[bytes]]:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        order_total = 42  # noqa: F841 - a local the report shows
        raise ValueError(message)

    return app


def call(
    app: DebuggedApplication, headers: dict[str, str] | None = None
) -> tuple[TestResponse, str]:
    """GET / through Werkzeug's test client, from this machine (REMOTE_ADDR 127.0.0.1);
    returns the response and what went to wsgi.errors."""
    errors = io.StringIO()
    response = Client(app, use_cookies=False).get(
        "/shop?page=2",
        headers=headers or {},
        errors_stream=errors,
        buffered=True,
        environ_overrides={"REMOTE_ADDR": "127.0.0.1"},
    )
    return response, errors.getvalue()


def report_id_of(response: TestResponse) -> str:
    match = REPORT_URL.match(response.headers["X-Debugbroker-Report"])
    assert match is not None, response.headers["X-Debugbroker-Report"]
    return match["id"]


def test_html_page_escapes_the_message_and_links_the_dashboard(
    broker: LiveBroker, make_options: Callable[..., Options]
) -> None:
    options = connected_options(broker, make_options)
    app = DebuggedApplication(raising_app("<script>alert(1)</script>"), options=options)
    response, log = call(app, {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    page = response.get_data(as_text=True)
    assert response.status_code == 500
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    url = response.headers["X-Debugbroker-Report"]
    assert url.startswith(f"{DASHBOARD}/#/reports/")
    assert f'<a href="{url}">Open this error in the debugbroker dashboard</a>' in page
    assert "not reachable" not in page and "Traceback" not in page
    assert "Traceback (most recent call last)" in log and url in log

    report = broker.report(report_id_of(response))
    assert report.type_name == "ValueError" and report.agent_id == get_transport(options).agent_id
    assert report.request is not None and report.request.method == "GET"
    assert report.request.url == "http://localhost/shop?page=2"


def test_credentials_in_headers_are_masked(
    broker: LiveBroker, make_options: Callable[..., Options]
) -> None:
    options = connected_options(broker, make_options)
    app = DebuggedApplication(raising_app(), options=options)
    response, _ = call(app, {"Authorization": "Bearer t0ken", "Cookie": "session=abc; theme=dark"})
    request = broker.report(report_id_of(response)).request
    assert request is not None
    headers = dict(request.headers)
    assert headers["Authorization"] == "Bearer <masked>"
    assert headers["Cookie"] == "session=<masked>; theme=<masked>"
    assert "t0ken" not in repr(request) and "abc" not in repr(request)


def test_json_for_api_clients(make_options: Callable[..., Options]) -> None:
    app = DebuggedApplication(raising_app('bad "quote"'), options=make_options())
    for headers in ({"Accept": "application/json"}, {"X-Requested-With": "XMLHttpRequest"}):
        response, _ = call(app, headers)
        assert response.status_code == 500 and response.mimetype == "application/json"
        assert response.get_json() == {
            "error": 'ValueError: bad "quote"',
            "report": response.headers["X-Debugbroker-Report"],
        }
        assert response.headers["X-Debugbroker-Report"].startswith("http://dash.down:8780/#/")


def test_plain_text_otherwise(make_options: Callable[..., Options]) -> None:
    app = DebuggedApplication(raising_app("<b>"), options=make_options())
    for headers in ({}, {"Accept": "*/*"}, {"Accept": "text/plain"}):
        response, _ = call(app, headers)
        text = response.get_data(as_text=True)
        assert response.status_code == 500 and response.mimetype == "text/plain"
        assert text.startswith("ValueError: <b>\n")
        assert response.headers["X-Debugbroker-Report"] in text
        assert "Traceback (most recent call last)" in text  # the broker is down here


def test_broker_down_fallback_page_over_real_http(make_options: Callable[..., Options]) -> None:
    options = make_options()
    app = DebuggedApplication(raising_app("<i>down</i>"), options=options)
    server = make_server("127.0.0.1", 0, app, WSGIServer, QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        started = time.monotonic()
        connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=DEADLINE)
        connection.request("GET", "/", headers={"Accept": "text/html"})
        answer = connection.getresponse()
        page = answer.read().decode()
        elapsed = time.monotonic() - started
    finally:
        server.shutdown()
        server.server_close()
    assert answer.status == 500 and elapsed < 2.0, f"took {elapsed:.2f}s"
    assert answer.getheader("X-Debugbroker-Report", "").startswith("http://dash.down:8780/#/")
    assert f"the debugbroker broker is not reachable at {options.broker_url}" in page
    assert "Traceback (most recent call last)" in page and "&lt;i&gt;down&lt;/i&gt;" in page
    assert "<i>" not in page


class QuietHandler(WSGIRequestHandler):
    """wsgiref's handler without the access log; errors still go to stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_error_while_iterating_the_body_closes_it(make_options: Callable[..., Options]) -> None:
    closed = threading.Event()

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            raise KeyError("lazy")
            yield b""

        def close(self) -> None:
            closed.set()

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Body()

    server = make_server("127.0.0.1", 0, DebuggedApplication(app, options=make_options()))
    server.RequestHandlerClass = QuietHandler
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=DEADLINE)
        connection.request("GET", "/", headers={"Accept": "application/json"})
        answer = connection.getresponse()
        body = json.loads(answer.read())
    finally:
        server.shutdown()
        server.server_close()
    # start_response was called twice: the second call replaced the 200 (exc_info passed).
    assert answer.status == 500 and body["error"] == "KeyError: 'lazy'"
    assert closed.is_set()


def serve_once(app: DebuggedApplication) -> tuple[int, bytes, str]:
    """One GET / through wsgiref (a PEP 3333 server); status, body and the server log."""
    errors = io.StringIO()

    def logged(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        environ["wsgi.errors"] = errors
        return app(environ, start_response)

    server = make_server("127.0.0.1", 0, logged)
    server.RequestHandlerClass = QuietHandler
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=DEADLINE)
        connection.request("GET", "/")
        answer = connection.getresponse()
        try:
            body = answer.read()
        except http.client.IncompleteRead as cut:  # the response was cut short
            body = cut.partial
    finally:
        server.shutdown()
        server.server_close()
    return answer.status, body, errors.getvalue()


def streaming_app(
    chunks: list[bytes], closed: threading.Event
) -> Callable[[Environ, StartResponse], Iterable[bytes]]:
    """An app whose body yields ``chunks`` and then fails."""

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            yield from chunks
            raise RuntimeError("mid-stream")

        def close(self) -> None:
            closed.set()

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Body()

    return app


def test_error_after_the_response_started_only_logs(make_options: Callable[..., Options]) -> None:
    closed = threading.Event()
    app = streaming_app([b"partial "], closed)
    status, body, log = serve_once(DebuggedApplication(app, options=make_options()))
    # The server sent the 200 with the first chunk; it refuses the 500 (re-raises exc_info).
    assert status == 200 and body == b"partial "
    assert "after the headers were sent" in log
    assert "RuntimeError: mid-stream" in log and "Traceback (most recent call last)" in log
    assert closed.is_set()


def test_a_streamed_body_closed_early_closes_the_app_body(
    make_options: Callable[..., Options],
) -> None:
    closed = threading.Event()
    body = DebuggedApplication(streaming_app([b"a", b"b"], closed), options=make_options())(
        {"REQUEST_METHOD": "GET", "PATH_INFO": "/"}, lambda *args: lambda data: None
    )
    assert isinstance(body, GeneratorType)
    assert next(body) == b"a"
    body.close()  # the client went away: the server closes the response
    assert closed.is_set()


def test_an_error_in_close_is_reported(make_options: Callable[..., Options]) -> None:
    class Body(list[bytes]):
        def close(self) -> None:
            raise OSError("close failed")

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Body([b"all of it"])

    status, body, log = serve_once(DebuggedApplication(app, options=make_options()))
    assert status == 200 and body == b"all of it" and "OSError: close failed" in log


def test_a_hostile_exception_still_gets_its_500(make_options: Callable[..., Options]) -> None:
    class Hostile(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no str for you")

        def __repr__(self) -> str:
            raise RuntimeError("no repr either")

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        raise Hostile()

    response, log = call(DebuggedApplication(app, options=make_options()))
    assert response.status_code == 500 and "Hostile" in response.get_data(as_text=True)
    assert "Hostile" in log


def test_flask_contexts_are_preserved_for_evals(make_options: Callable[..., Options]) -> None:
    flask_app = flask.Flask(__name__)
    flask_app.config["PROPAGATE_EXCEPTIONS"] = True

    @flask_app.route("/shop")
    def shop() -> str:
        raise LookupError(flask.request.path)

    middleware = DebuggedApplication(flask_app.wsgi_app, options=make_options())
    response, _ = call(middleware)
    assert response.status_code == 500 and "LookupError: /shop" in response.get_data(as_text=True)
    contexts = middleware.preserved_contexts(report_id_of(response))
    assert any(type(context).__name__ == "RequestContext" for context in contexts)


def test_flask_contexts_ride_on_the_error_through_other_middleware(
    make_options: Callable[..., Options],
) -> None:
    flask_app = flask.Flask(__name__)
    flask_app.config["PROPAGATE_EXCEPTIONS"] = True
    raised: list[BaseException] = []

    @flask_app.route("/shop")
    def shop() -> str:
        raise LookupError(flask.request.path)

    def rewrapping(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        try:
            return flask_app.wsgi_app(environ, start_response)
        except LookupError as error:
            raised.append(error)
            raise RuntimeError("wrapped") from error

    middleware = DebuggedApplication(rewrapping, options=make_options())
    ok = Client(middleware).get("/nothing-here")  # a 404 ends normally: nothing kept
    assert ok.status_code == 404
    response, _ = call(middleware)
    assert response.status_code == 500 and "RuntimeError: wrapped" in response.get_data(True)
    contexts = middleware.preserved_contexts(report_id_of(response))
    assert [type(context).__name__ for context in contexts] == ["AppContext", "RequestContext"]
    # Taken off the error once the report has them: the app's exception is as it was.
    assert vars(raised[0]) == {}


def test_options_merge_and_werkzeug_arguments(make_options: Callable[..., Options]) -> None:
    base = make_options()
    app = DebuggedApplication(
        raising_app(),
        evalex=False,
        options=base,
        app_name="shop",
        secret="other",
        request_key="_werkzeug_debug",
        console_path="/console",
        console_init_func=None,
        show_hidden_frames=True,
        pin_security=False,
        pin_logging=False,
    )
    assert (app.options.app_name, app.options.secret, app.options.evalex) == (
        "shop",
        "other",
        False,
    )
    assert app.options.broker_url == base.broker_url and not app.evalex
    with pytest.raises(TypeError, match="no_such_argument"):
        DebuggedApplication(raising_app(), no_such_argument=1)
    # evalex=True cannot switch on what the options switched off.
    assert not DebuggedApplication(raising_app(), options=Options(evalex=False)).options.evalex


def test_evalex_false_reaches_the_broker(
    broker: LiveBroker, make_options: Callable[..., Options]
) -> None:
    options = make_options(broker.url, evalex=False)
    app = DebuggedApplication(raising_app(), evalex=False, options=options)
    transport = get_transport(app.options)
    assert transport.options.evalex is False and transport.wait_connected(DEADLINE)
    response, _ = call(app)
    assert response.status_code == 500
    broker.report(report_id_of(response))


def test_a_working_app_is_untouched(make_options: Callable[..., Options]) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("201 Created", [("X-Mine", "yes")])
        return [b"a", b"b"]

    response, log = call(DebuggedApplication(app, options=make_options()))
    assert (response.status_code, response.get_data(), log) == (201, b"ab", "")
    assert response.headers["X-Mine"] == "yes"


def test_the_500_answers_mask_the_message_and_the_fallback_traceback(
    make_options: Callable[..., Options],
) -> None:
    app = DebuggedApplication(raising_app("bad token=" + "T0K"), options=make_options())
    for accept in ("text/html", "text/plain", "application/json"):
        response, _ = call(app, {"Accept": accept})
        body = html.unescape(response.get_data(as_text=True))
        assert response.status_code == 500
        assert "bad token=<masked>" in body and "T0K" not in body, accept


def test_broker_down_the_traceback_is_shown_only_to_local_clients(
    make_options: Callable[..., Options],
) -> None:
    app = DebuggedApplication(raising_app("<i>down</i>"), options=make_options())
    for remote, local in (
        ("127.0.0.1", True),
        ("127.0.0.9", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("192.0.2.7", False),
        ("2001:db8::7", False),
        ("", False),
    ):
        for accept in ("text/html", "text/plain"):
            response = Client(app, use_cookies=False).get(
                "/", headers={"Accept": accept}, environ_overrides={"REMOTE_ADDR": remote}
            )
            page = response.get_data(as_text=True)
            assert response.status_code == 500
            assert "not reachable at" in page  # the note is there either way
            assert ("Traceback (most recent call last)" in page) is local, (remote, accept)
            assert ("order_total" in page) is False  # locals never, only the traceback
            said = "shown here only to clients on the app" in page
            assert said is not local, (remote, accept)


def _flask_shop(**config: object) -> flask.Flask:
    flask_app = flask.Flask("shop")
    flask_app.config.update(config)

    @flask_app.route("/shop")
    def shop() -> str:
        raise LookupError("no such item")

    return flask_app


@pytest.mark.parametrize(
    ("config", "install", "advised"),
    [
        ({}, False, True),  # Flask answers its own 500s: no report would ever come
        ({"PROPAGATE_EXCEPTIONS": True}, False, False),
        ({"DEBUG": True}, False, False),  # debug mode propagates
        ({"TESTING": True}, False, False),
        ({"PROPAGATE_EXCEPTIONS": False, "DEBUG": True}, False, True),  # said off: off
        ({}, True, False),  # install_flask(app) reports them from Flask's signal
    ],
)
def test_a_flask_app_whose_errors_never_reach_the_middleware_is_told_once(
    make_options: Callable[..., Options],
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    config: dict[str, object],
    install: bool,
    advised: bool,
) -> None:
    flask_app = _flask_shop(**config)
    if install:  # what install_flask(flask_app) notes, without connecting Flask's signal
        monkeypatch.setattr(frameworks, "_flask_apps", [flask_app])
        monkeypatch.setattr(frameworks, "_flask_connected", True)
    flask_app.wsgi_app = DebuggedApplication(  # type: ignore[method-assign]
        flask_app.wsgi_app, options=make_options()
    )
    client = Client(flask_app, use_cookies=False)
    for _ in range(2):  # buffered: the response is closed (a server always closes it)
        assert client.get("/shop", buffered=True).status_code == 500
    said = capfd.readouterr().err
    advice = "the Flask app 'shop' answers its own errors with a 500 page"
    assert said.count(advice) == (1 if advised else 0), said
    if advised:
        assert "app.config['PROPAGATE_EXCEPTIONS'] = True" in said
        assert "debugbroker.install_flask(app)" in said


def test_a_django_handler_whose_errors_never_reach_the_middleware_is_told(
    tmp_path: Path,
) -> None:
    """In a process of its own: Django's settings are configured once per process."""
    program = """
import sys
import django
from django.conf import settings
settings.configure(
    DEBUG=False, ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__, SECRET_KEY="k" * 50,
    DEBUG_PROPAGATE_EXCEPTIONS=sys.argv[1] == "propagate",
)
urlpatterns = []
django.setup()
from django.core.wsgi import get_wsgi_application
import debugbroker
from debugbroker.agent.middleware import unseen_errors_warning
if sys.argv[1] == "install":
    debugbroker.install_django()
print(unseen_errors_warning(get_wsgi_application()))
"""
    script = tmp_path / "django_probe.py"
    script.write_text(program)
    answers = {}
    for mode in ("off", "propagate", "install"):
        done = subprocess.run(
            [sys.executable, str(script), mode],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        assert done.returncode == 0, done.stderr
        answers[mode] = done.stdout.strip()
    assert answers["off"].startswith("this Django app answers its own errors with a 500 page")
    assert "DEBUG_PROPAGATE_EXCEPTIONS = True" in answers["off"]
    assert answers["propagate"] == answers["install"] == "None"


def test_the_flask_check_reads_the_settings_of_the_first_request_not_of_the_wrapping(
    make_options: Callable[..., Options], capfd: pytest.CaptureFixture[str]
) -> None:
    """A process console starts the agent when the app is wrapped, before the app's config
    is complete: the check waits for the first request."""
    flask_app = _flask_shop()
    flask_app.wsgi_app = DebuggedApplication(  # type: ignore[method-assign]
        flask_app.wsgi_app, options=make_options(), console=True
    )
    flask_app.config["PROPAGATE_EXCEPTIONS"] = True  # set after wrapping
    assert Client(flask_app, use_cookies=False).get("/shop", buffered=True).status_code == 500
    assert "answers its own errors" not in capfd.readouterr().err
