"""A real Flask app with the agent on ``app.wsgi_app``, as docs/frameworks.md shows."""

from __future__ import annotations

import os

from flask import Flask, request

from debugbroker import DebuggedApplication
from tests.e2e.apps.leaky import Login

ORDERS = {1: [3, 4, 5], 2: []}

app = Flask(__name__)
# Let errors reach the middleware instead of Flask's own 500 page (debug mode does the same).
app.config["PROPAGATE_EXCEPTIONS"] = True


def average(items: list[int]) -> float:
    return sum(items) / len(items)


@app.route("/")
def index() -> str:
    return str(os.getpid())


@app.route("/orders/<int:order_id>")
def order(order_id: int) -> str:
    customer = request.args.get("customer", "ada")
    items = ORDERS[order_id]
    return f"{customer}: {average(items)}"


@app.route("/leak", methods=["POST"])
def leak() -> str:
    """Holds the request's secrets the ways an app does, then fails with one in its message."""
    form = request.form
    args = request.args
    headers = request.headers
    cookies = request.cookies  # noqa: F841
    current = request.environ["werkzeug.request"]  # noqa: F841 - the Request object (its repr: the URL)
    login = Login(user="ada", password=form["password"])  # noqa: F841
    raw = {b"password": form["password"].encode(), b"user": b"ada"}  # noqa: F841
    pairs = [("X-Api-Key", headers["X-Api-Key"]), ("Accept", "text/plain")]  # noqa: F841
    dsn = os.environ.get("DATABASE_URL", "")  # noqa: F841
    raise PermissionError(f"refused token={args['api_token']}")


app.wsgi_app = DebuggedApplication(app.wsgi_app, app_name="flask-test")  # type: ignore[method-assign]
