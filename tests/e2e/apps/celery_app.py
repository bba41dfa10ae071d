"""A Celery app whose tasks fail, reported by ``install_celery`` (broker: ``REDIS_URL``)."""

from __future__ import annotations

import os

from celery import Celery

import debugbroker

app = Celery("celery_app", broker=os.environ["REDIS_URL"])
app.conf.update(worker_hijack_root_logger=False, broker_connection_retry_on_startup=True)
debugbroker.install_celery(app)


class Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


@app.task(bind=True)  # type: ignore[untyped-decorator]
def charge(self: object, order_id: int, api_token: str = "", note: str = "") -> None:
    amount = order_id * 10
    cart = {"order": order_id, "pid": os.getpid()}
    raise ValueError(f"card declined for order {order_id} ({amount}, {len(cart)})")


@app.task  # type: ignore[untyped-decorator]
def add_up(count: int) -> int:
    doubled = count * 2
    return doubled + 1  # a breakpoint's line
