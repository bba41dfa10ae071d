"""The dashboard's files: versioned URLs cached as immutable, the rest revalidated.

A real broker process serves them (``broker/static_files.py``); the loading and URL
rewriting are also checked as plain function calls on a directory of our own.
"""

from __future__ import annotations

import gzip
import hashlib
import re
from pathlib import Path

import pytest

from debugbroker.broker.app import STATIC_DIR
from debugbroker.broker.http.static_files import IMMUTABLE, REVALIDATE, load_static_files
from tests.broker.test_auth import assert_secure
from tests.conftest import Broker, HttpAnswer, http

VERSION = re.compile(r"^[0-9a-f]{16}$")


def version_of(name: str) -> str:
    """What the broker must put in the URL of ``broker/static/NAME``: its bytes' hash."""
    return hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:16]


def get(broker: Broker, path: str, **headers: str) -> HttpAnswer:
    return http("GET", broker.url + path, headers=headers)


def test_the_index_references_the_versioned_bundle_and_is_not_cached(broker: Broker) -> None:
    answer = get(broker, "/")
    assert answer.status == 200
    assert answer.headers["cache-control"] == REVALIDATE
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert_secure(answer, "index")
    page = answer.text
    for name in ("app.js", "app.css", "favicon.svg"):
        assert f'"/static/{name}?v={version_of(name)}"' in page, name
        assert f'"/static/{name}"' not in page, name
    assert '<script type="module" src="/static/app.js?v=' in page
    # Otherwise the page is the committed index.html.
    unversioned = re.sub(r"\?v=[0-9a-f]{16}", "", page)
    assert unversioned == (STATIC_DIR / "index.html").read_text(encoding="utf-8")


def test_the_index_is_revalidated_by_etag(broker: Broker) -> None:
    first = get(broker, "/")
    etag = first.headers["etag"]
    again = get(broker, "/", **{"If-None-Match": etag})
    assert again.status == 304 and again.body == b""
    assert again.headers["etag"] == etag
    assert again.headers["cache-control"] == REVALIDATE
    assert_secure(again, "index 304")
    other = get(broker, "/", **{"If-None-Match": '"0000000000000000"'})
    assert other.status == 200 and other.body == first.body


@pytest.mark.parametrize("name", ["app.js", "app.css", "favicon.svg"])
def test_a_versioned_file_is_immutable_and_exact(broker: Broker, name: str) -> None:
    answer = get(broker, f"/static/{name}?v={version_of(name)}")
    assert answer.status == 200
    assert answer.headers["cache-control"] == IMMUTABLE
    assert answer.body == (STATIC_DIR / name).read_bytes()
    assert "content-encoding" not in answer.headers  # none asked for
    assert answer.headers["etag"] == f'"{version_of(name)}"'
    assert_secure(answer, name)
    types = {"app.js": "text/javascript", "app.css": "text/css", "favicon.svg": "image/svg+xml"}
    assert answer.headers["content-type"] == f"{types[name]}; charset=utf-8"


def test_the_bundle_comes_gzipped_when_accepted(broker: Broker) -> None:
    path = f"/static/app.js?v={version_of('app.js')}"
    answer = get(broker, path, **{"Accept-Encoding": "br, gzip;q=0.8"})
    assert answer.status == 200
    assert answer.headers["content-encoding"] == "gzip"
    assert answer.headers["vary"] == "Accept-Encoding"
    assert answer.headers["cache-control"] == IMMUTABLE
    assert gzip.decompress(answer.body) == (STATIC_DIR / "app.js").read_bytes()
    assert len(answer.body) < len((STATIC_DIR / "app.js").read_bytes()) // 2
    # The gzipped representation has its own ETag, and revalidates as itself.
    assert answer.headers["etag"] == f'"{version_of("app.js")}-gzip"'
    held = {"Accept-Encoding": "gzip", "If-None-Match": answer.headers["etag"]}
    assert get(broker, path, **held).status == 304
    refused = get(broker, path, **{"Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in refused.headers
    assert refused.body == (STATIC_DIR / "app.js").read_bytes()


@pytest.mark.parametrize("query", ["", "?v=0123456789abcdef", "?v=", "?v=old&x=1", "?x=1"])
def test_an_old_or_missing_version_gets_the_current_file_revalidated(
    broker: Broker, query: str
) -> None:
    """Old links and pages of an older broker still work, but are never cached for good."""
    answer = get(broker, f"/static/app.js{query}")
    assert answer.status == 200
    assert answer.body == (STATIC_DIR / "app.js").read_bytes()
    assert answer.headers["cache-control"] == REVALIDATE
    assert "immutable" not in answer.headers["cache-control"]
    etag = answer.headers["etag"]
    assert etag == f'"{version_of("app.js")}"'
    assert_secure(answer, f"app.js{query}")
    again = get(broker, f"/static/app.js{query}", **{"If-None-Match": f'W/"x", {etag}'})
    assert again.status == 304 and again.body == b""
    assert again.headers["cache-control"] == REVALIDATE


def test_head_gives_the_headers_without_the_body(broker: Broker) -> None:
    answer = http("HEAD", f"{broker.url}/static/app.js?v={version_of('app.js')}")
    assert answer.status == 200 and answer.body == b""
    assert answer.headers["cache-control"] == IMMUTABLE
    assert int(answer.headers["content-length"]) == (STATIC_DIR / "app.js").stat().st_size


@pytest.mark.parametrize(
    "path", ["/static/nope.js", "/static/%2e%2e/app.py", "/static/..%2fapp.py", "/static/"]
)
def test_unknown_static_files_are_404_with_the_security_headers(broker: Broker, path: str) -> None:
    answer = get(broker, path)
    assert answer.status == 404
    assert b"import" not in answer.body  # no broker source leaked
    assert_secure(answer, path)


def test_login_sends_browsers_to_the_dashboard_and_the_stylesheet_is_served(
    broker: Broker,
) -> None:
    login = get(broker, "/login")
    assert login.status == 303 and login.headers["location"] == "/"
    css = get(broker, "/static/app.css")
    assert css.status == 200 and css.body == (STATIC_DIR / "app.css").read_bytes()
    assert css.headers["cache-control"] == REVALIDATE


# Loading, as plain function calls on a directory of our own.


def test_loading_versions_every_file_and_rewrites_only_known_references(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text(
        '<link href="/static/a.css"><script src="/static/a.js"></script>'
        '<img src="/static/missing.png"><a href="/static/a.js?v=pinned">x</a>'
        '<script src="/elsewhere/a.js"></script>',
        encoding="utf-8",
    )
    (tmp_path / "a.js").write_bytes(b"console.log(1);\n" * 200)
    (tmp_path / "a.css").write_bytes(b"body{}")
    (tmp_path / "fonts").mkdir()
    (tmp_path / "fonts" / "x.woff2").write_bytes(b"\x00\x01")
    (tmp_path / ".hidden").write_bytes(b"secret")
    loaded = load_static_files(tmp_path)
    assert sorted(loaded.files) == ["a.css", "a.js", "fonts/x.woff2", "index.html"]
    script = loaded.files["a.js"]
    assert VERSION.match(script.version)
    assert script.version == hashlib.sha256(script.body).hexdigest()[:16]
    assert script.gzipped is not None and gzip.decompress(script.gzipped) == script.body
    assert loaded.files["a.css"].gzipped is None  # too small to be worth it
    assert loaded.files["fonts/x.woff2"].gzipped is None  # not a text type
    assert loaded.index is not None
    page = loaded.index.body.decode()
    assert f'href="/static/a.css?v={loaded.files["a.css"].version}"' in page
    assert f'src="/static/a.js?v={script.version}"' in page
    assert 'src="/static/missing.png"' in page  # unknown: left as it is
    assert 'href="/static/a.js?v=pinned"' in page  # already has a query: left as it is
    assert 'src="/elsewhere/a.js"' in page
    assert loaded.index.version != loaded.files["index.html"].version


def test_loading_without_an_index_or_directory(tmp_path: Path) -> None:
    (tmp_path / "a.js").write_bytes(b"1")
    assert load_static_files(tmp_path).index is None
    missing = load_static_files(tmp_path / "nope")
    assert missing.index is None and dict(missing.files) == {}


def test_a_changed_file_gets_a_new_version(tmp_path: Path) -> None:
    (tmp_path / "a.js").write_bytes(b"one")
    first = load_static_files(tmp_path).files["a.js"].version
    (tmp_path / "a.js").write_bytes(b"two")
    assert load_static_files(tmp_path).files["a.js"].version != first
