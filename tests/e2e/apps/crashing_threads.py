"""A program with ``debugbroker.install_excepthook()``: a background thread crashes.

python crashing_threads.py thread   # a thread dies; the program keeps running
python crashing_threads.py main     # the main program dies of an uncaught error
"""

from __future__ import annotations

import sys
import threading

import debugbroker


def sync_inventory(batch: list[str]) -> int:
    """A background job that fails on its input."""
    counted = {name: len(name) for name in batch}
    return counted["missing"]


def main() -> None:
    debugbroker.install_excepthook()
    if sys.argv[1] == "main":
        sync_inventory(["apple", "fig"])
    worker = threading.Thread(target=sync_inventory, args=(["pear"],), name="inventory")
    worker.start()
    worker.join()
    print("main thread still running", flush=True)
    threading.Event().wait()  # until the test stops us


if __name__ == "__main__":
    main()
