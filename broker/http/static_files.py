"""The dashboard's files: content-versioned URLs cached for good, plain ones revalidated.

The broker reads ``broker/static/`` once when it starts (off the loop) and keeps each file's
bytes, a gzipped copy when that is smaller, and a version: the first 16 hex digits of the
SHA-256 of its bytes. The dashboard page (``/``) it serves is ``index.html`` with every
``/static/NAME`` it references rewritten to ``/static/NAME?v=VERSION``, so the committed
bundle keeps its plain, deterministic file names.

- ``/static/NAME?v=VERSION`` with the current version: ``Cache-Control: public,
  max-age=31536000, immutable``. The browser never asks again, and V8 reuses its compiled
  code of the bundle from the cache.
- ``/static/NAME`` without a version, or with another one (a page from an older broker):
  the current file with ``Cache-Control: no-cache`` and an ``ETag``, so the browser
  revalidates (``304 Not Modified``) and never keeps a stale bundle as immutable.
- ``/``: ``no-cache`` with an ``ETag``; a new broker version is picked up on the next load.

Files changed on disk while the broker runs are served as they were at start.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import mimetypes
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from aiohttp import web

__all__ = [
    "IMMUTABLE",
    "REVALIDATE",
    "StaticFile",
    "StaticFiles",
    "StaticSite",
    "load_static_files",
]

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
INDEX_NAME = "index.html"
_VERSION_DIGITS = 16
_GZIP_OVER = 1024  # bytes; smaller files are sent as they are
_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".txt": "text/plain",
}
_COMPRESSIBLE = frozenset(_TYPES.values())
_STATIC_REFERENCE = re.compile(r'(?P<attribute>\b(?:src|href)=")/static/(?P<name>[^"?#]+)"')


@dataclass(frozen=True, slots=True)
class StaticFile:
    """One file as the broker serves it."""

    name: str  # the path below /static/, with "/" separators
    body: bytes
    gzipped: bytes | None  # the gzipped body, when that is smaller and the type compresses
    content_type: str
    charset: str | None
    version: str  # hex prefix of the SHA-256 of ``body``

    @classmethod
    def of(cls, name: str, body: bytes) -> StaticFile:
        """The file ``name`` with these bytes: its type, version and gzipped copy."""
        suffix = Path(name).suffix.lower()
        content_type = _TYPES.get(suffix) or mimetypes.guess_type(name)[0]
        content_type = content_type or "application/octet-stream"
        gzipped = None
        if content_type in _COMPRESSIBLE and len(body) > _GZIP_OVER:
            packed = gzip.compress(body, compresslevel=9, mtime=0)
            gzipped = packed if len(packed) < len(body) else None
        text = content_type.startswith("text/") or content_type.endswith(("+xml", "/json"))
        return cls(
            name=name,
            body=body,
            gzipped=gzipped,
            content_type=content_type,
            charset="utf-8" if text else None,
            version=hashlib.sha256(body).hexdigest()[:_VERSION_DIGITS],
        )

    @property
    def url(self) -> str:
        """Its content-versioned URL (cached as immutable)."""
        return f"/static/{self.name}?v={self.version}"


@dataclass(frozen=True, slots=True)
class StaticFiles:
    """The files of a static directory, and the dashboard page referencing their versions."""

    files: Mapping[str, StaticFile]
    index: StaticFile | None  # the dashboard page with versioned URLs; None without index.html


def _versioned_index(html: bytes, files: Mapping[str, StaticFile]) -> bytes:
    def versioned(match: re.Match[str]) -> str:
        found = files.get(match["name"])
        return f'{match["attribute"]}{found.url}"' if found else match[0]

    return _STATIC_REFERENCE.sub(versioned, html.decode("utf-8")).encode("utf-8")


def load_static_files(directory: Path) -> StaticFiles:
    """Read every file below ``directory`` (blocking: call it off the loop)."""
    files: dict[str, StaticFile] = {}
    if directory.is_dir():
        for path in sorted(directory.rglob("*")):
            relative = path.relative_to(directory)
            if path.is_file() and not any(part.startswith(".") for part in relative.parts):
                name = relative.as_posix()
                files[name] = StaticFile.of(name, path.read_bytes())
    page = files.get(INDEX_NAME)
    index = StaticFile.of(INDEX_NAME, _versioned_index(page.body, files)) if page else None
    return StaticFiles(files=MappingProxyType(files), index=index)


def _accepts_gzip(request: web.Request) -> bool:
    for item in request.headers.get("Accept-Encoding", "").lower().split(","):
        coding, _, parameters = item.partition(";")
        if coding.strip() in ("gzip", "*"):
            quality = parameters.strip().removeprefix("q=")
            try:
                return not parameters.strip() or float(quality) > 0
            except ValueError:
                return False
    return False


def _answer(request: web.Request, file: StaticFile, cache_control: str) -> web.Response:
    """The file, gzipped when accepted, or 304 when the browser holds this representation."""
    use_gzip = file.gzipped is not None and _accepts_gzip(request)
    etag = f"{file.version}-gzip" if use_gzip else file.version
    headers = {"Cache-Control": cache_control}
    if file.gzipped is not None:
        headers["Vary"] = "Accept-Encoding"
    held = request.if_none_match or ()
    if any(tag.value in (etag, "*") for tag in held):
        response = web.Response(status=304, headers=headers)
    else:
        if use_gzip:
            headers["Content-Encoding"] = "gzip"
        body = file.gzipped if use_gzip and file.gzipped is not None else file.body
        response = web.Response(
            body=body, headers=headers, content_type=file.content_type, charset=file.charset
        )
    response.etag = etag
    return response


class StaticSite:
    """The routes ``/`` and ``/static/{name}``; their files are loaded by ``load()`` at start."""

    __slots__ = ("directory", "_loaded")

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._loaded: StaticFiles | None = None

    async def load(self) -> None:
        """Read and hash the directory's files in a thread (the broker's start-up)."""
        self._loaded = await asyncio.to_thread(load_static_files, self.directory)

    @property
    def files(self) -> StaticFiles:
        """The loaded files; an error before ``load()``."""
        if self._loaded is None:
            raise RuntimeError("StaticSite.load() has not run yet")
        return self._loaded

    async def index(self, request: web.Request) -> web.StreamResponse:
        """``GET /``: the dashboard page, referencing the files' versioned URLs."""
        page = self.files.index
        if page is None:
            raise web.HTTPNotFound(
                text=f"debugbroker: the dashboard is not built ({self.directory} has no "
                f"{INDEX_NAME}): run 'npm ci && npm run build' in frontend/.\n"
            )
        return _answer(request, page, REVALIDATE)

    async def static(self, request: web.Request) -> web.StreamResponse:
        """``GET /static/{name}``: immutable under the current version, else revalidated."""
        file = self.files.files.get(request.match_info["name"])
        if file is None:
            raise web.HTTPNotFound(text="debugbroker: no such static file\n")
        current = request.query.get("v") == file.version
        return _answer(request, file, IMMUTABLE if current else REVALIDATE)

    def routes(self) -> list[web.RouteDef]:
        """The two routes (GET and HEAD)."""
        return [web.get("/", self.index), web.get("/static/{name:.+}", self.static)]
