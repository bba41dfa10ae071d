"""One broker per data dir: an exclusive ``flock`` on ``DIR/broker.lock`` for the broker's life.

The lock is the kernel's, held by the open file: a broker that dies (even by SIGKILL) lets
go of it with its process, so a lock is never stale and nothing needs cleaning up. The file
says who holds it (pid, dashboard, agents' endpoint), for the message a second broker shows.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from debugbroker.broker.store.schema import StoreError, unwritable_message

__all__ = ["DataDirLock", "LOCK_NAME"]

LOCK_NAME = "broker.lock"


class DataDirLock:
    """The exclusive lock of a data dir, taken by ``acquire`` and held until ``release``."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_NAME
        self._descriptor: int | None = None

    def acquire(self, holder: str) -> None:
        """Take the lock and write ``holder`` (who we are) in the file; ``StoreError`` when
        another broker holds it or the data dir cannot be written."""
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as error:
            raise StoreError(unwritable_message(self.path.parent, error)) from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = _read(descriptor)
            os.close(descriptor)
            raise StoreError(
                f"the data dir {self.path.parent} is in use by another broker "
                f"({other or 'its pid and address are not written yet'}). Stop that broker "
                "first, or give this one another data dir with --data DIR."
            ) from None
        except OSError as error:
            os.close(descriptor)
            raise StoreError(unwritable_message(self.path.parent, error)) from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"pid {os.getpid()}, {holder}\n".encode(), 0)
        self._descriptor = descriptor

    def release(self) -> None:
        """Let go of the lock (the file stays: removing it would race a starting broker)."""
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None


def _read(descriptor: int) -> str:
    try:
        text = os.pread(descriptor, 1000, 0).decode("utf-8", "replace")
    except OSError:
        return ""
    return " ".join(text.split())
