"""The request panel of a report: method, URL, headers, query, form, cookies and the environ.

Built from the WSGI environ (the ASGI middleware passes a WSGI-style view of its scope).
The body is never read: ``wsgi.input`` belongs to the app, and reading what it did not read
would change what it sees. The form is shown only when the app already parsed it (Werkzeug
and Flask keep the parsed form on the request object they store in the environ; Django's
request is a local of the frames the error went through).

Values whose names match ``Options.secret_names`` are masked everywhere they appear:
headers, cookies, query parameters (also inside the URL), form fields and environ keys.
Every value is also masked by content (``secret_values.mask_text``): URL passwords and
secret-named ``name=value`` parameters inside a ``Referer``, an environ value such as
``DATABASE_URL=postgres://user:password@host`` (wsgiref copies ``os.environ``) or a form field.
Everything is capped: pairs per table, characters per value and per request.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, unquote_plus

from debugbroker.agent.options import Options
from debugbroker.agent.reprs.safe_text import USER_CODE_ERRORS, plain_repr, safe_text
from debugbroker.agent.reprs.secret_names import SecretNames, secret_pattern
from debugbroker.agent.reprs.secret_values import VALUE_MASK, mask_text
from debugbroker.agent.reprs.tree import Budget, represent
from debugbroker.protocol import RequestInfo, format_node

__all__ = ["MASK", "build_request_info", "request_url"]

MASK = VALUE_MASK
_MAX_PAIRS = 100  # per table (headers, query, form, cookies)
_MAX_REQUEST_FRAMES = 200  # frames searched for Django's request
_MAX_ENVIRON = 200
_MAX_NAME = 200
_MAX_VALUE = 1_000
_MAX_TOTAL = 128 * 1024  # characters of the whole request panel
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
Pairs = tuple[tuple[str, str], ...]
# A pair as shown (name and value cut, the value masked by content) per exact short name and
# value: a pure function of them and the secret names, and the same server keys, flags and
# headers come with every request (an error storm's requests are alike).
_MAX_REMEMBERED_VALUE = 256
_MAX_REMEMBERED_PAIRS = 2048
_shown_pairs: dict[tuple[SecretNames, str, str], tuple[str, str]] = {}


class _Table:
    """Pairs added under the shared character allowance of one request."""

    def __init__(self, allowance: list[int], secret: SecretNames, limit: int = _MAX_PAIRS) -> None:
        self.allowance = allowance
        self.secret = secret
        self.limit = limit
        self.pairs: list[tuple[str, str]] = []

    def add(self, name: str, value: str) -> bool:
        """Add a pair; False once the table or the request is full."""
        if len(self.pairs) >= self.limit or self.allowance[0] <= 0:
            return False
        short = type(name) is str and type(value) is str and len(value) <= _MAX_REMEMBERED_VALUE
        key = (self.secret, name, value)
        pair = _shown_pairs.get(key) if short else None
        if pair is None:
            name = safe_text(name, _MAX_NAME)[0]
            text, omitted = safe_text(mask_text(str.__str__(value), self.secret), _MAX_VALUE)
            if omitted:
                text += f"… ({omitted} more characters)"
            pair = (name, text)
            if short:
                if len(_shown_pairs) >= _MAX_REMEMBERED_PAIRS:
                    _shown_pairs.clear()  # atomic, unlike evicting one entry while threads read
                _shown_pairs[key] = pair
        self.allowance[0] -= len(pair[0]) + len(pair[1])
        self.pairs.append(pair)
        return True

    def result(self) -> Pairs:
        return tuple(self.pairs)


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return str(value)


def _mask_header(name: str, value: str) -> str:
    if name.lower() == "cookie":  # keep the cookie names: they tell what was sent
        names = (part.split("=", 1)[0].strip() for part in value.split(";"))
        return "; ".join(f"{cookie}={MASK}" for cookie in names if cookie)
    scheme, _, credentials = value.partition(" ")
    return f"{scheme} {MASK}" if credentials else MASK


def _mask_query(query: str, secret: SecretNames) -> str:
    """The query string with the values of secret-looking parameters masked."""
    parts = []
    for part in query.split("&"):
        name, sep, _ = part.partition("=")
        if sep and secret.search(unquote_plus(name)):
            part = f"{name}={MASK}"
        parts.append(part)
    return "&".join(parts)


def request_url(environ: Mapping[str, Any], secret: SecretNames | None = None) -> str:
    """The request URL rebuilt from the environ (PEP 3333), secret query values masked."""
    scheme = _text(environ.get("wsgi.url_scheme", "http"))
    host = environ.get("HTTP_HOST")
    if not host:
        host = _text(environ.get("SERVER_NAME", ""))
        port = _text(environ.get("SERVER_PORT", ""))
        if port and port != ("443" if scheme == "https" else "80"):
            host = f"{host}:{port}"
    path = _text(environ.get("SCRIPT_NAME", "")) + _text(environ.get("PATH_INFO", ""))
    url = f"{scheme}://{_text(host)}{quote(path.encode('latin-1', 'replace'), safe='/;=,@:!$&+')}"
    query = _text(environ.get("QUERY_STRING", ""))
    if query and secret is not None:
        query = _mask_query(query, secret)
    url = f"{url}?{query}" if query else url
    return mask_text(url, secret) if secret is not None else url


def _headers(environ: Mapping[str, Any], table: _Table, secret: SecretNames) -> None:
    for key, value in environ.items():
        if not isinstance(key, str):
            continue
        if key.startswith("HTTP_"):
            name = key[5:].replace("_", "-").title()
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            name = key.replace("_", "-").title()
        else:
            continue
        text = _text(value)
        if secret.search(name) or secret.search(key):
            text = _mask_header(name, text)
        if not table.add(name, text):
            return


def _cookies(header: str, table: _Table, secret: SecretNames) -> None:
    for part in header.split(";"):
        name, sep, value = part.partition("=")
        name, value = name.strip(), value.strip()
        if not name or not sep:
            continue
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if not table.add(name, MASK if secret.search(name) else value):
            return


def _masked_pairs(
    pairs: Iterable[tuple[object, object]], table: _Table, secret: SecretNames
) -> None:
    for name, value in pairs:
        name_text = _text(name)
        if not table.add(name_text, MASK if secret.search(name_text) else _text(value)):
            return


def _multi_pairs(mapping: object) -> Iterator[tuple[object, object]] | None:
    """Every (name, value) of a multi-value mapping: Werkzeug's ``MultiDict``
    (``items(multi=True)``), Django's ``QueryDict``/``MultiValueDict`` (``lists()``)."""
    lists = getattr(mapping, "lists", None)
    if callable(lists):
        return ((name, value) for name, values in lists() for value in values)
    items = getattr(mapping, "items", None)
    if items is None:
        return None
    try:
        pairs: Iterator[tuple[object, object]] = iter(items(multi=True))
    except TypeError:
        pairs = iter(items())
    return pairs


def _django_requests(error: BaseException | None, environ: Mapping[str, Any]) -> list[object]:
    """Django's request for this environ, found as the ``request`` local of a frame the
    error went through (Django keeps no pointer to it in the environ)."""
    tb = getattr(error, "__traceback__", None)
    found: list[object] = []
    for _ in range(_MAX_REQUEST_FRAMES):
        if tb is None:
            break
        candidate = tb.tb_frame.f_locals.get("request")
        if candidate is not None and getattr(candidate, "environ", None) is environ:
            found.append(candidate)
            break
        tb = tb.tb_next
    return found


def _parsed_form(
    environ: Mapping[str, Any], contexts: Iterable[object], error: BaseException | None = None
) -> Iterator[tuple[object, object]] | None:
    """The form (and uploaded files) the app already parsed, or None: the body is never read.

    Werkzeug's request object sits in the environ while the request runs; Flask clears that
    when its context ends, but hands the context to the middleware (``preserve_context``).
    Django's request is the ``request`` local of its handler's frames; it keeps the parsed
    form in ``_post`` and ``_files`` once the app read ``request.POST`` or ``FILES``.
    """
    requests = [environ.get("werkzeug.request")]
    requests += [getattr(context, "request", None) for context in contexts]
    for request in requests:
        state = getattr(request, "__dict__", None)
        if request is None or not isinstance(state, dict):
            continue
        form, files = _multi_pairs(state.get("form")), _multi_pairs(state.get("files"))
        if form is not None:
            return itertools.chain(form, files or ())
    for request in _django_requests(error, environ):
        state = getattr(request, "__dict__", None)
        if not isinstance(state, dict):
            continue
        form, files = _multi_pairs(state.get("_post")), _multi_pairs(state.get("_files"))
        if form is not None:
            return itertools.chain(form, files or ())
    return None


def _environ(
    environ: Mapping[str, Any], table: _Table, secret: SecretNames, options: Options
) -> None:
    for key in sorted(k for k in environ if isinstance(k, str))[:_MAX_ENVIRON]:
        value = environ[key]
        if secret.search(key):
            text = _mask_header("cookie", _text(value)) if "COOKIE" in key else MASK
        elif key == "QUERY_STRING" or key in ("REQUEST_URI", "RAW_URI"):
            text = _mask_query(_text(value), secret)
        elif isinstance(value, str):
            text = value
        elif (plain := plain_repr(value, options)) is not None:  # the server's flags, objects
            text = plain
        else:
            node = represent(value, options, budget=Budget(0.01, 8 * 1024))
            text = format_node(node)
        if not table.add(key, text):
            return


def build_request_info(
    environ: Mapping[str, Any],
    options: Options,
    contexts: Iterable[object] = (),
    error: BaseException | None = None,
) -> RequestInfo | None:
    """The request as the report shows it, secrets masked; None if the environ is unusable.

    ``contexts`` are framework contexts the app preserved (Flask's), and ``error``'s frames
    hold Django's request: both are searched for a form the app already parsed.
    """
    try:
        secret = secret_pattern(options)
        allowance = [_MAX_TOTAL]
        headers, query = _Table(allowance, secret), _Table(allowance, secret)
        form, cookies = _Table(allowance, secret), _Table(allowance, secret)
        environ_table = _Table(allowance, secret, _MAX_ENVIRON)
        _headers(environ, headers, secret)
        query_string = _text(environ.get("QUERY_STRING", ""))
        _masked_pairs(parse_qsl(query_string, keep_blank_values=True), query, secret)
        _cookies(_text(environ.get("HTTP_COOKIE", "")), cookies, secret)
        form_note = ""
        try:
            parsed = _parsed_form(environ, contexts, error)
            if parsed is not None:
                _masked_pairs(parsed, form, secret)
        except USER_CODE_ERRORS:
            parsed, form_note = None, "the parsed form could not be read"
        content_type = _text(environ.get("CONTENT_TYPE", "")).lower()
        if parsed is None and not form_note and content_type.startswith(_FORM_TYPES):
            form_note = "the app did not parse the form; debugbroker never reads the body"
        _environ(environ, environ_table, secret, options)
        url, _ = safe_text(request_url(environ, secret), 4 * _MAX_VALUE)
        return RequestInfo(
            method=safe_text(_text(environ.get("REQUEST_METHOD", "GET")), _MAX_NAME)[0],
            url=url,
            headers=headers.result(),
            query=query.result(),
            form=form.result(),
            cookies=cookies.result(),
            environ=environ_table.result(),
            form_note=form_note,
        )
    except USER_CODE_ERRORS:
        return None
