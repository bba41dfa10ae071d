"""What the masking tests' views share: a dataclass holding a password, a wsgiref runner.

``python -m tests.e2e.apps.leaky flask_app:app PORT`` serves a WSGI app with wsgiref, which
copies ``os.environ`` into every request's environ (so a ``DATABASE_URL`` with a password
reaches the report's Request panel, as it did in the issue).
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

__all__ = ["Login", "serve"]


@dataclass
class Login:
    """A record with a secret-named field, as an app would hold one."""

    user: str
    password: str


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def serve(target: str, port: int) -> None:
    """Serve ``module:attribute`` on 127.0.0.1:``port`` until killed."""
    module, _, attribute = target.partition(":")
    app = getattr(importlib.import_module(module), attribute)
    server = make_server("127.0.0.1", port, app, _ThreadingServer, _QuietHandler)
    server.serve_forever()


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
