"""Entry point of the `debugbroker` command; explains the missing extra instead of a traceback."""

from __future__ import annotations

import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the broker CLI, or say how to install it when the `broker` extra is missing."""
    try:
        from debugbroker.broker.cli.main import main as broker_main
    except ImportError as error:  # aiohttp or Pygments absent: the agent-only install
        missing = getattr(error, "name", None) or str(error)
        print(
            f"debugbroker: the broker needs extra packages ({missing} is missing).\n"
            "Install them with:  pip install 'debugbroker[broker]'",
            file=sys.stderr,
        )
        return 2
    return broker_main(argv)
