"""A process whose agent reports errors on command, for the store's fault tests.

Commands on stdin, one JSON answer per line on stdout:
``storm N`` queues N reports in a background thread (answers at once), ``state`` gives the
ids queued so far, the ids the broker acknowledged (``Stored``) and the agent's counters,
``quit`` exits. The agent is configured from the environment (``DEBUGBROKER_URL``...).
"""

from __future__ import annotations

import json
import sys
import threading

from debugbroker.agent.answers import submit_error
from debugbroker.agent.options import Options
from debugbroker.agent.process import get_transport

OPTIONS = Options.from_environment(queue_size=100_000)
sent: list[str] = []


def storm(count: int) -> None:
    for number in range(count):
        try:
            raise ValueError(f"storm {number}")
        except ValueError as error:
            report, _ = submit_error(error, OPTIONS, None)
            if report is not None:
                sent.append(report.id)


def main() -> None:
    transport = get_transport(OPTIONS)
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command == "storm":
            threading.Thread(target=storm, args=(int(argument),), daemon=True).start()
            answer: dict[str, object] = {"ok": True}
        elif command == "state":
            answer = {
                "sent": list(sent),
                "acked": list(transport.last_stored),
                "stored_reports": transport.stored_reports,
                "dropped": transport.dropped_reports,
                "queued": transport.queued_reports,
            }
        elif command == "quit":
            break
        else:
            answer = {"error": f"unknown command {command!r}"}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
