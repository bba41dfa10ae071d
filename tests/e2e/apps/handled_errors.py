"""A plain program (no middleware) that handles errors and reports them, then stays alive.

``capture``: ``capture_exception`` from a background thread with context keywords, the
failing frame's local changed after the capture; then a forked child captures its own.
``logging``: ``install_logging()``, then ``logger.exception`` and a record whose args break
``%`` formatting. ``asyncio``: a task whose exception nobody retrieves. Each prints a
``done`` line; the test stops the program.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading

import debugbroker


def charge(order_id: int) -> str | None:
    amount = 42
    try:
        amount / (order_id - order_id)
    except ZeroDivisionError:
        url = debugbroker.capture_exception(order=order_id, api_key="sk-live-123")
        amount = -1  # after the capture: the console shows 42, the value at capture
        return url
    return None


def in_child() -> str | None:
    basket = ["child-item"]
    try:
        basket.index("missing")
    except ValueError:
        return debugbroker.capture_exception(where="child")
    return None


def log_failure(logger: logging.Logger) -> None:
    invoice = {"number": 7}
    try:
        invoice["total"]
    except KeyError:
        logger.exception("invoice %s has no total", invoice["number"])


def log_badly_formatted(logger: logging.Logger) -> None:
    count = "many"
    try:
        int(count)
    except ValueError:
        logger.error("%d items failed", count, exc_info=True)


async def sync_stock(sku: str) -> None:
    shelf = {"sku": sku, "count": 0}
    await asyncio.sleep(0)
    raise LookupError(f"no stock for {shelf['sku']}")


async def forget_a_task() -> None:
    debugbroker.install_asyncio()
    task = asyncio.get_running_loop().create_task(sync_stock("A-1"))
    await asyncio.wait([task])  # done, its exception never retrieved
    del task  # collected now: the loop's handler hears of it
    print("asyncio done", os.getpid(), flush=True)
    await asyncio.Event().wait()


def main() -> None:
    mode = sys.argv[1]
    if mode == "capture":
        results: list[str | None] = []
        worker = threading.Thread(target=lambda: results.append(charge(5)), name="charger")
        worker.start()
        worker.join()
        print("parent url", results, flush=True)
        child = os.fork()
        if child == 0:
            print("child url", [in_child()], flush=True)
            print("child done", os.getpid(), flush=True)
            threading.Event().wait()  # held frames live while the test evaluates
        print("parent done", os.getpid(), flush=True)
    elif mode == "logging":
        logging.basicConfig(format="%(name)s %(levelname)s %(message)s")
        debugbroker.install_logging()
        logger = logging.getLogger("shop.billing")
        log_failure(logger)
        log_badly_formatted(logger)
        print("logging done", os.getpid(), flush=True)
    elif mode == "asyncio":
        asyncio.run(forget_a_task())
    threading.Event().wait()


if __name__ == "__main__":
    main()
