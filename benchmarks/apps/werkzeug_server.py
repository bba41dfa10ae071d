"""Werkzeug's own debugger on Werkzeug's own server: ``python werkzeug_server.py PORT``."""

from __future__ import annotations

import sys

from werkzeug.debug import DebuggedApplication
from werkzeug.serving import run_simple

from benchmarks.apps.bench_wsgi import raw_app

if __name__ == "__main__":
    debugged = DebuggedApplication(raw_app, evalex=True, pin_security=False)
    run_simple("127.0.0.1", int(sys.argv[1]), debugged, threaded=True)
