"""An RQ job that fails (``rq worker --exception-handler debugbroker.rq_exception_handler``)."""

from __future__ import annotations

import os


def charge(order_id: int, api_token: str = "") -> None:
    amount = order_id * 10
    worker_pid = os.getpid()
    raise ValueError(f"card declined for order {order_id} ({amount} in {worker_pid})")
