"""Werkzeug's debugger over the 31-frame error of benchmark 2: ``python werkzeug_deep.py PORT``.

``/deep`` fails, ``/`` answers (so the benchmark knows the server is up).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from werkzeug.debug import DebuggedApplication
from werkzeug.serving import run_simple

from benchmarks.error_path import deep_app


def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    if environ.get("PATH_INFO") == "/deep":
        return deep_app(environ, start_response)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


if __name__ == "__main__":
    debugged = DebuggedApplication(app, evalex=True, pin_security=False)
    run_simple("127.0.0.1", int(sys.argv[1]), debugged, threaded=True)
