"""The example stack's Celery tasks (``celery --workdir examples -A tasks worker``), one with a bug.

Failed tasks are reported from the worker child that ran them (``install_celery``): open the
report in the dashboard and a console runs in that child, in the task's frame.
"""

from __future__ import annotations

import os

from celery import Celery

import debugbroker

app = Celery("tasks", broker=os.environ.get("CELERY_BROKER_URL", "redis://localhost:6379/0"))
app.conf.update(broker_connection_retry_on_startup=True, worker_hijack_root_logger=False)
debugbroker.install_celery(app)

WAREHOUSES = {"north": ["apple", "pear"], "south": ["fig"]}


@app.task
def ship_order(order_id: int, warehouse: str) -> str:
    """Pick the order from a warehouse; an unknown warehouse fails (the example's bug)."""
    stock = WAREHOUSES[warehouse]
    return f"order {order_id}: shipped {len(stock)} items from {warehouse}"
