"""An unmodified Flask app with an app factory, as ``flask --app plain_flask:create_app()``
serves it: no agent, no ``PROPAGATE_EXCEPTIONS``, no ``TRAP_BAD_REQUEST_ERRORS``."""

from __future__ import annotations

import os

from flask import Flask, request


def create_app(name: str = "plain_flask") -> Flask:
    """The app, as a factory (``debugbroker run 'plain_flask:create_app("shop")'``)."""
    app = Flask(name)

    @app.route("/pid")
    def pid() -> str:
        return str(os.getpid())

    @app.route("/boom")
    def boom() -> str:
        cart = {"apples": 3}
        return str(cart["pears"])

    @app.route("/form", methods=["POST"])
    def form() -> str:
        return request.form["quantity"]  # missing: a bad-request key error

    return app
