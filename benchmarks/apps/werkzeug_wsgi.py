"""The benchmark app in Werkzeug's debugger, for gunicorn: ``werkzeug_wsgi:app``.

The storm benchmark runs the same load against it (Werkzeug renders its HTML page for every
error, in the worker); its console cannot work across gunicorn's workers, which the storm
does not use.
"""

from __future__ import annotations

from werkzeug.debug import DebuggedApplication

from benchmarks.apps.bench_wsgi import raw_app

app = DebuggedApplication(raw_app, evalex=True, pin_security=False)
