"""The WSGI middleware: a drop-in for ``werkzeug.debug.DebuggedApplication``.

On an error it captures a report (holding the frames for evals), hands it to the process's
transport, prints the plain traceback to the server log, and answers a 500 that fits the
client (HTML, JSON or text) with a link to the report in the dashboard. It never raises an
error of its own into the host app: whatever fails inside, the answer is the app's error.
"""

from __future__ import annotations

import os
import sys
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from types import FrameType, GeneratorType, TracebackType
from typing import Any, TextIO

from debugbroker.agent.answers import (
    dispose,
    error_answer,
    report_url,
    submit_error,
    traceback_text,
)
from debugbroker.agent.breakpoints import THREAD_TRACE, trace_this_thread
from debugbroker.agent.capture.request import build_request_info
from debugbroker.agent.evals.evaluate import register_context_source
from debugbroker.agent.options import Options, middleware_options
from debugbroker.agent.process import get_transport
from debugbroker.agent.reprs.safe_text import describe_error
from debugbroker.agent.reprs.secret_names import secret_pattern
from debugbroker.agent.reprs.secret_values import mask_text
from debugbroker.agent.transport.repeats import RepeatKey
from debugbroker.agent.transport.transport import Transport
from debugbroker.protocol import Report, RequestInfo

__all__ = ["DebuggedApplication", "request_info"]

Environ = dict[str, Any]
ExcInfo = tuple[type[BaseException], BaseException, TracebackType]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

# Werkzeug's DebuggedApplication arguments that mean nothing here (no in-app console, no PIN:
# the dashboard has its own login); accepted so that swapping the import is enough.
_WERKZEUG_ARGUMENTS = frozenset(
    {
        "request_key",
        "console_path",
        "console_init_func",
        "show_hidden_frames",
        "pin_security",
        "pin_logging",
    }
)


def request_info(
    environ: Environ,
    options: Options | None = None,
    contexts: Iterable[object] = (),
    error: BaseException | None = None,
) -> RequestInfo | None:
    """The request as the report shows it (``agent/request.py``), secrets masked.

    ``contexts`` are the ones the app preserved (Flask's), whose request may hold a form the
    app parsed after the environ stopped pointing at it; ``error``'s frames hold Django's.
    """
    chosen = options if options is not None else Options()
    return build_request_info(environ, chosen, contexts, error)


# Bumped in a forked child, so the first request there starts that process's own agent.
_fork_generation = 0


def _count_fork() -> None:
    global _fork_generation
    _fork_generation += 1


_register_at_fork: Callable[..., None] | None = getattr(os, "register_at_fork", None)
if _register_at_fork is not None:  # not on Windows, which has no fork
    _register_at_fork(after_in_child=_count_fork)


def _guess_app_name(app: object) -> str:
    """A name for the dashboard's agent list: Flask's app name, else the app's module."""
    try:
        owner = getattr(app, "__self__", None)  # Flask's app.wsgi_app is a bound method
        name = getattr(owner, "name", None) or getattr(owner, "import_name", None)
        if isinstance(name, str) and name:
            return name[:100]
        module = getattr(app, "__module__", None) or type(app).__module__
        qualname = getattr(app, "__qualname__", None) or type(app).__qualname__
        return f"{module}:{qualname}"[:100]
    except Exception:
        return ""


def unseen_errors_warning(app: object) -> str | None:
    """Why the errors of ``app`` never reach the middleware, if they do not: a Flask app
    that answers its own 500s (``PROPAGATE_EXCEPTIONS`` off, neither debug nor testing) or
    a Django handler (``DEBUG_PROPAGATE_EXCEPTIONS`` off), unless ``install_flask`` or
    ``install_django`` reports them. None when they do reach it, or the app is another."""
    try:
        owner: Any = getattr(app, "__self__", app)  # Flask's app.wsgi_app is a bound method
        classes = [(cls.__module__.partition(".")[0], cls.__name__) for cls in type(owner).__mro__]
        hooks = sys.modules.get("debugbroker.agent.integrations.frameworks")
        if ("flask", "Flask") in classes:
            propagate = owner.config.get("PROPAGATE_EXCEPTIONS")
            if propagate is None:
                propagate = owner.testing or owner.debug
            if propagate or (hooks is not None and hooks.reports_flask(owner)):
                return None
            return (
                f"the Flask app {owner.name!r} answers its own errors with a 500 page "
                "(PROPAGATE_EXCEPTIONS is off), so DebuggedApplication never sees them and "
                "the dashboard gets no report: set app.config['PROPAGATE_EXCEPTIONS'] = True, "
                "or call debugbroker.install_flask(app) (docs/frameworks.md, 'Flask')"
            )
        if ("django", "WSGIHandler") in classes:
            from django.conf import settings  # noqa: PLC0415 - loaded: the app is Django's

            if getattr(settings, "DEBUG_PROPAGATE_EXCEPTIONS", False) or (
                hooks is not None and hooks.reports_django()
            ):
                return None
            return (
                "this Django app answers its own errors with a 500 page "
                "(DEBUG_PROPAGATE_EXCEPTIONS is off), so DebuggedApplication never sees them "
                "and the dashboard gets no report: set DEBUG_PROPAGATE_EXCEPTIONS = True in "
                "the settings, or call debugbroker.install_django() (docs/frameworks.md, "
                "'Django')"
            )
    except Exception:  # an odd object posing as a framework: no advice
        return None
    return None


class DebuggedApplication:
    """Wraps a WSGI app: errors become dashboard reports with live frames, and a 500 page."""

    def __init__(
        self,
        app: WSGIApp,
        evalex: bool = True,
        *,
        broker_url: str | None = None,
        secret: str | None = None,
        app_name: str | None = None,
        options: Options | None = None,
        console: bool = False,
        repeat_burst: int | None = None,
        **werkzeug_compat: object,
    ) -> None:
        unknown = set(werkzeug_compat) - _WERKZEUG_ARGUMENTS
        if unknown:
            raise TypeError(f"DebuggedApplication() got unexpected arguments: {sorted(unknown)}")
        base = options if options is not None else Options.from_environment()
        if app_name is None and options is None and not base.app_name:
            app_name = _guess_app_name(app)
        self.app = app
        self.options = middleware_options(
            base,
            evalex=evalex,
            console=console,
            broker_url=broker_url,
            secret=secret,
            app_name=app_name,
            repeat_burst=repeat_burst,
        )
        self.evalex = self.options.evalex
        self._contexts: OrderedDict[str, list[object]] = OrderedDict()
        self._contexts_lock = threading.Lock()
        register_context_source(self.preserved_contexts)  # evals run inside them
        self._agent_generation = -1  # the fork generation whose agent was started
        self._advised = False  # whether the app was checked for errors it answers itself
        if self.options.console and self.evalex:  # the console is there before any request
            self._ensure_transport()  # (the first request still checks the app's settings)

    @property
    def transport(self) -> Transport:
        """This process's agent transport (made on first use, and again after a fork)."""
        return get_transport(self.options)

    def preserved_contexts(self, report_id: str) -> tuple[object, ...]:
        """The contexts the app preserved (Flask's app and request context) for a report."""
        with self._contexts_lock:
            return tuple(self._contexts.get(report_id, ()))

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Run the app; on an error, report it and answer a 500 if the response has not started.

        This runs on every request, so the happy path is a few attribute reads and one call:
        the agent is started once per process, ``start_response`` is passed through as it is
        (whether the app already called it is found out only after an error, see
        ``_start_error_response``), and a list or tuple body, which cannot fail while it is
        iterated and has no ``close``, is handed back as it is.
        """
        if self._agent_generation != _fork_generation:
            self._start_agent()
        if THREAD_TRACE.needed:  # 3.10/3.11 with breakpoints armed: hook this thread
            trace_this_thread()
        if self.evalex:  # Flask hands its contexts here so evals can see request & co.
            environ["werkzeug.debug.preserve_context"] = _keep_context
        try:
            app_iter = self.app(environ, start_response)
        except Exception as error:
            return self._answer_first(error, environ, start_response)
        kind = type(app_iter)
        if kind is list or kind is tuple:
            return app_iter
        return self._iterate(app_iter, environ, start_response)

    def _answer_first(
        self,
        error: Exception,
        environ: Environ,
        start_response: StartResponse,
    ) -> Iterator[bytes]:
        """Answer the 500 at once, then capture and report ``error``; never raises.

        The answer needs only the error's type and message and the id its report will
        have; the capture (the costly part: every frame's locals) runs once the server has
        taken the body, or when it closes the response early, so the client does not wait
        for it (the worker is busy as long as before). By then ``__call__`` has returned
        and its ``except`` dropped ``error``, so no frame snapshot keeps it in a cycle.
        """
        report_id = uuid.uuid4().hex
        body: bytes | None = None
        transport, earlier, key, repeat_of = dispose(error, self.options)
        if earlier is not None:  # logged (or captured) on its way here: link that report
            report_id = earlier.id
        if repeat_of is not None:  # past its budget: counted against its last full report
            report_id = repeat_of
        try:
            connected = transport is not None and transport.connected
            text = (
                "" if connected else traceback_text(error, None, secret_pattern(self.options))
            )  # the page shows it
            status, headers, body = error_answer(
                error,
                environ,
                None,
                transport,
                text,
                self.options.broker_url,
                secret_pattern(self.options),
                report_id,
                repeat_of is not None,
            )
            _start_error_response(start_response, status, headers, error)
        except Exception:  # the server says the headers went out after all
            body = None
        try:
            if body is not None:
                yield body
        finally:
            if repeat_of is not None:
                self._log_repeat(error, environ, transport, repeat_of)
            else:
                report, transport = self._report(error, environ, report_id, key)
                self._log_error(
                    traceback_text(error, report, secret_pattern(self.options)),
                    environ,
                    report,
                    transport,
                    False,
                )

    def _start_agent(self) -> None:
        """Start this process's agent with its first request, so the dashboard lists it; say
        once per process if the app's errors never reach us (``unseen_errors_warning``)."""
        self._agent_generation = _fork_generation
        self._ensure_transport()
        if not self._advised:
            self._advised = True
            advice = unseen_errors_warning(self.app)
            if advice is not None:
                try:
                    print(f"debugbroker: {advice}", file=sys.stderr, flush=True)
                except Exception:  # stderr closed or broken: nothing left to tell
                    pass

    def _ensure_transport(self) -> None:
        try:
            get_transport(self.options)
        except Exception:
            pass

    def _iterate(
        self,
        app_iter: Iterable[bytes],
        environ: Environ,
        start_response: StartResponse,
    ) -> Iterator[bytes]:
        """Pass the body through; an error while iterating or closing it is answered too.

        ``yield from`` hands each chunk over without resuming this frame (cheaper than a
        ``for`` loop here), so whether chunks went out before an error
        is not counted: the server says so when the 500 is tried (``_answer_error``).
        Closing: ``yield from`` closes the iterator it runs when the server closes us early,
        which for a generator is ``app_iter`` itself, and an exhausted generator's ``close``
        does nothing, so only other bodies are closed here.
        """
        try:
            yield from app_iter
        except GeneratorExit:  # the server closed us early
            if type(app_iter) is not GeneratorType:  # yield from closed only its iterator
                _close(app_iter)
            raise
        except Exception as error:
            try:
                _close(app_iter)
            except Exception:
                pass  # the first error is the one to report
            answer = list(self._answer_error(error, environ, start_response))
        except BaseException:  # the process ends (KeyboardInterrupt, SystemExit)
            _close(app_iter)
            raise
        else:
            if type(app_iter) is GeneratorType:
                return
            try:
                _close(app_iter)
                return
            except Exception as error:
                answer = list(self._answer_error(error, environ, start_response))
        _refresh_locals(sys._getframe())
        yield from answer

    def _answer_error(
        self,
        error: Exception,
        environ: Environ,
        start_response: StartResponse,
    ) -> Iterator[bytes]:
        """Report ``error`` and answer a 500 unless the server already sent the headers.

        Whether they went out is the server's to say (PEP 3333): ``start_response`` with
        ``exc_info`` re-raises the error once they did, and then the response is only cut
        short. Never raises.
        """
        transport, _, key, repeat_of = dispose(error, self.options)
        report: Report | None = None
        if repeat_of is None:
            report, transport = self._report(error, environ, None, key)
            text = traceback_text(error, report, secret_pattern(self.options))
        else:
            text = ""
        body: bytes | None = None
        cut_short = False
        try:
            if repeat_of is not None:
                status, headers, body = error_answer(
                    error,
                    environ,
                    None,
                    transport,
                    "",
                    self.options.broker_url,
                    secret_pattern(self.options),
                    repeat_of,
                    True,
                )
            else:
                status, headers, body = self._error_page(error, environ, report, transport, text)
        except Exception:
            pass  # no page: the log still has the error
        else:
            try:
                _start_error_response(start_response, status, headers, error)
            except Exception:  # the headers went out: too late for a 500
                body, cut_short = None, True
        if repeat_of is not None:
            self._log_repeat(error, environ, transport, repeat_of)
        else:
            self._log_error(text, environ, report, transport, cut_short)
        if body is not None:
            yield body

    def _log_error(
        self,
        text: str,
        environ: Environ,
        report: Report | None,
        transport: Transport | None,
        cut_short: bool,
    ) -> None:
        """Print the traceback ``text`` (and the report's link) to the server log."""
        log = _error_stream(environ)
        try:
            if cut_short:
                log.write(
                    "debugbroker: error in a streamed response after the headers were sent; "
                    "the response was cut short.\n"
                )
            log.write(text if text.endswith("\n") else text + "\n")
            if report is not None and transport is not None:
                log.write(f"debugbroker: report {report_url(transport, report.id)}\n")
            log.flush()
        except Exception:  # a closed log stream: the page still shows the error
            pass

    def _log_repeat(
        self, error: Exception, environ: Environ, transport: Transport | None, report_id: str
    ) -> None:
        """One line in the server log for an error counted, not captured (the storm policy)."""
        try:
            title = mask_text(describe_error(error, 300), secret_pattern(self.options))
            log = _error_stream(environ)
            log.write(
                f"debugbroker: {title} (repeated: counted, not captured; its last full "
                f"report is {report_url(transport, report_id)})\n"
            )
            log.flush()
        except Exception:  # a closed log stream
            pass

    def _report(
        self,
        error: Exception,
        environ: Environ,
        report_id: str | None = None,
        key: RepeatKey | None = None,
    ) -> tuple[Report | None, Transport | None]:
        """Capture ``error`` and queue it for the broker; (None, None) if the agent fails.
        The report becomes the one ``key``'s repeats are counted against."""
        contexts = _taken_contexts(error)
        request = request_info(environ, self.options, contexts, error)
        report, transport = submit_error(error, self.options, request, report_id, environ)
        if report is not None and transport is not None:
            transport.repeats.represent(key, report.id)
            if contexts:
                self._keep_contexts(report.id, contexts, transport)
        return report, transport

    def _keep_contexts(self, report_id: str, contexts: list[object], transport: Transport) -> None:
        """Keep the preserved contexts alive as long as the report's frames are held."""
        held = set(transport.registry.held_reports())
        with self._contexts_lock:
            for stale in [key for key in self._contexts if key not in held]:
                del self._contexts[stale]
            if report_id in held:
                self._contexts[report_id] = contexts

    def _error_page(
        self,
        error: Exception,
        environ: Environ,
        report: Report | None,
        transport: Transport | None,
        text: str,
    ) -> tuple[str, list[tuple[str, str]], bytes]:
        """The 500 answer for this client: status, headers and body."""
        return error_answer(
            error,
            environ,
            report,
            transport,
            text,
            self.options.broker_url,
            secret_pattern(self.options),
        )


def _start_error_response(
    start_response: StartResponse, status: str, headers: list[tuple[str, str]], error: Exception
) -> None:
    """Send the 500's status and headers, replacing the app's if it had sent its own.

    The request path does not wrap ``start_response`` (it runs on every request), so whether
    the app already called it is not known here. The first call leaves ``exc_info`` out:
    some servers (Werkzeug's test client) re-raise any ``exc_info`` they get. A server that
    saw an earlier call refuses a second one without it (PEP 3333: an ``AssertionError``
    from gunicorn, wsgiref and Werkzeug's server), so the call is made again with
    ``exc_info``, which replaces the headers, or re-raises if they already went out.
    """
    try:
        start_response(status, headers)
    except Exception:
        start_response(status, headers, (type(error), error, error.__traceback__))


_KEPT_CONTEXTS = "__debugbroker_contexts__"


def _keep_context(context: object) -> None:
    """The environ's ``werkzeug.debug.preserve_context``: keep a context with its error.

    Flask hands its app and request context to this callable as each request ends, in a
    ``finally``, so after an error while the error propagates; evals on that error's
    frames then run inside them (``request``, ``g``, ``session`` work). They matter only
    for an error, so they are kept on the error in flight, which is what the middleware
    catches next: a request that ends normally keeps nothing (no list and ``append`` per
    request, as Werkzeug makes). Contexts handed
    over before a streamed body fails are not kept: no error was in flight yet.
    """
    error = sys.exc_info()[1]
    if error is None:
        return
    try:
        error.__dict__.setdefault(_KEPT_CONTEXTS, []).append(context)
    except Exception:
        pass  # an exception type without a usable __dict__: evals run without the context


def _taken_contexts(error: BaseException) -> list[object]:
    """The contexts kept on ``error`` (or on an error it was raised from), taken off it."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        try:
            kept = current.__dict__.pop(_KEPT_CONTEXTS, None)
        except Exception:
            kept = None
        if isinstance(kept, list):
            return kept
        current = current.__cause__ or current.__context__
    return []


def _refresh_locals(frame: FrameType) -> None:
    """Drop the handled error from a frame's locals snapshot, once ``except`` has ended.

    Capture reads ``f_locals`` of every frame of the traceback, the handler's own running
    frame included, and CPython keeps that snapshot (with ``error`` in it) as long as the
    frame lives: frame -> snapshot -> error -> traceback -> frame is a cycle, which keeps
    every local of the failed request (a 1 MB upload, say) alive until a full collection.
    Reading ``f_locals`` again after ``except`` ended re-syncs the snapshot without it.
    """
    try:
        frame.f_locals  # noqa: B018 - the read is the point
    except Exception:
        pass


def _close(app_iter: object) -> None:
    close = getattr(app_iter, "close", None)
    if close is not None:
        close()


def _error_stream(environ: Environ) -> TextIO:
    stream = environ.get("wsgi.errors")
    return stream if stream is not None and hasattr(stream, "write") else sys.stderr
