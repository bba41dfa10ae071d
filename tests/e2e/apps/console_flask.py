"""A real Flask app with the agent and its process console, for the console's browser tests."""

from __future__ import annotations

import os

from flask import Flask

from debugbroker import DebuggedApplication

PRICES = {"tea": 3, "cake": 4}

flask_app = Flask("shop")
# Let errors reach the middleware instead of Flask's own 500 page (debug mode does the same).
flask_app.config["PROPAGATE_EXCEPTIONS"] = True


@flask_app.route("/")
def index() -> str:
    return str(os.getpid())


@flask_app.route("/orders/<int:order_id>")
def order(order_id: int) -> str:
    basket = ["tea", "scone"]
    return str(sum(PRICES[item] for item in basket) + order_id)


app = DebuggedApplication(flask_app, console=True, app_name="console-e2e")
