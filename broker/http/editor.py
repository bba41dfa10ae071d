"""Editor links: which editor "Open in editor" opens, and how container paths become host paths.

The broker's defaults come from ``--editor`` and ``--path-map`` (or ``DEBUGBROKER_EDITOR``
and ``DEBUGBROKER_PATH_MAP``) and are served at ``GET /api/editor``; each user can override
them in the dashboard, where they are kept in that browser. The dashboard builds the links
itself (``frontend/src/state/editor.ts``): a path in an app container such as
``/srv/app/views.py`` opens as ``/home/me/shop/app/views.py`` on the machine running the editor.
"""

from __future__ import annotations

import argparse

from aiohttp import web

__all__ = ["EDITORS", "PathMap", "parse_editor", "parse_path_map", "editor_routes"]

EDITORS = ("none", "vscode", "pycharm")
PathMap = tuple[tuple[str, str], ...]
_MAX_PAIRS = 32


def parse_editor(value: str) -> str:
    """An editor name from ``EDITORS`` (``""`` means none)."""
    name = value.strip().lower() or "none"
    if name not in EDITORS:
        raise argparse.ArgumentTypeError(
            f"unknown editor {value!r}: choose one of {', '.join(EDITORS)}"
        )
    return name


def parse_path_map(value: str) -> PathMap:
    """``CONTAINER=HOST`` pairs separated by commas or new lines, both absolute paths."""
    pairs = []
    for entry in value.replace("\n", ",").split(","):
        if not entry.strip():
            continue
        container, sep, host = (part.strip() for part in entry.partition("="))
        if not sep or not container or not host:
            raise argparse.ArgumentTypeError(
                f"path map entry {entry.strip()!r} is not CONTAINER=HOST (e.g. /srv=/home/me/shop)"
            )
        pairs.append((container.rstrip("/") or "/", host.rstrip("/") or "/"))
    if len(pairs) > _MAX_PAIRS:
        raise argparse.ArgumentTypeError(f"at most {_MAX_PAIRS} path map entries")
    return tuple(pairs)


def editor_routes(editor: str, path_map: PathMap) -> list[web.RouteDef]:
    """``GET /api/editor``: the broker's default editor and path mapping."""
    defaults = {"editor": editor, "path_map": [list(pair) for pair in path_map]}

    async def get_editor(request: web.Request) -> web.Response:
        return web.json_response(defaults)

    return [web.get("/api/editor", get_editor)]
