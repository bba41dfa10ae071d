"""A pre-forking server built on ``multiprocessing``: N worker processes share one socket.

Each worker serves ``lifecycle_wsgi.app`` with the standard library's WSGI server; a request
to ``/exit`` ends that worker normally (its ``multiprocessing`` finalizers run), and the
parent then starts a new one, like a process pool recycling its workers.

    python mp_server.py PORT WORKERS
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import socket
import sys
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from lifecycle_wsgi import app  # type: ignore[import-not-found]  # tests/e2e/apps on the path


class _Handler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass


def serve(listener: socket.socket) -> None:
    """One worker: serve requests on the shared socket until one asks for ``/exit``."""
    server = WSGIServer(("127.0.0.1", 0), _Handler, bind_and_activate=False)
    server.socket.close()
    server.socket = listener
    server.server_address = listener.getsockname()
    server.server_name, server.server_port = "127.0.0.1", listener.getsockname()[1]
    server.setup_environ()
    done = False

    def exiting(environ: dict[str, Any], start_response: Any) -> Any:
        nonlocal done
        if environ.get("PATH_INFO") == "/exit":
            done = True
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [f"bye {os.getpid()}".encode()]
        return app(environ, start_response)

    server.set_app(exiting)
    while not done:
        server.handle_request()


def main() -> None:
    port, workers = int(sys.argv[1]), int(sys.argv[2])
    listener = socket.create_server(("127.0.0.1", port))
    context = multiprocessing.get_context("fork")
    running = [context.Process(target=serve, args=(listener,)) for _ in range(workers)]
    for process in running:
        process.start()
    while True:  # recycle: a worker that exited is replaced
        multiprocessing.connection.wait([p.sentinel for p in running])
        for index, process in enumerate(running):
            if not process.is_alive():
                process.join()
                running[index] = context.Process(target=serve, args=(listener,))
                running[index].start()


if __name__ == "__main__":
    main()
