"""The opt-in excepthooks: chained, idempotent, and quiet about Ctrl+C."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from types import TracebackType

import pytest

from debugbroker.agent import hooks
from debugbroker.agent.options import Options
from debugbroker.agent.process import get_transport
from tests.conftest import free_port


@pytest.fixture
def options() -> Iterator[Options]:
    """Options for an agent whose broker never answers; its transport is closed after."""
    chosen = Options(broker_url=f"tcp://127.0.0.1:{free_port()}", queue_size=8)
    yield chosen
    hooks.uninstall_excepthook()
    get_transport(chosen).close()


def test_install_chains_both_hooks_and_uninstall_puts_them_back(options: Options) -> None:
    seen: list[str] = []

    def previous_sys(kind: type[BaseException], error: BaseException, tb: object) -> None:
        seen.append(f"sys {error}")

    def previous_thread(args: threading.ExceptHookArgs) -> None:
        seen.append(f"thread {args.exc_value}")

    saved = sys.excepthook, threading.excepthook
    sys.excepthook, threading.excepthook = previous_sys, previous_thread
    try:
        hooks.install_excepthook(options=options)
        installed = sys.excepthook, threading.excepthook
        hooks.install_excepthook(options=options)  # a second call changes nothing
        assert (sys.excepthook, threading.excepthook) == installed
        transport = get_transport(options)

        thread = threading.Thread(target=lambda: 1 / 0)
        thread.start()
        thread.join()
        assert seen == ["thread division by zero"]
        assert transport.queued_reports == 1  # reported before the previous hook printed it

        error = KeyboardInterrupt("stop")
        tb: TracebackType | None = None
        sys.excepthook(KeyboardInterrupt, error, tb)
        assert seen[-1] == "sys stop"
        assert transport.queued_reports == 1  # Ctrl+C is not a bug report

        hooks.uninstall_excepthook()
        assert (sys.excepthook, threading.excepthook) == (previous_sys, previous_thread)
    finally:
        sys.excepthook, threading.excepthook = saved
