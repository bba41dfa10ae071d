"""Reports of real sample programs against golden JSON files (``DEBUGBROKER_REGEN=1`` rewrites).

Volatile fields are normalised: ids, times, pids, hosts, frame ids, memory addresses and
paths (the repository becomes ``<repo>``, the standard library ``<stdlib>``). Library frames
keep their file and function but not their line numbers, source or locals, which change with
the Python patch release.
"""

from __future__ import annotations

import json
import os
import re
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest

from debugbroker.agent.capture import capture_exception
from debugbroker.agent.frames import FrameRegistry
from debugbroker.agent.options import Options
from debugbroker.agent.protocol import to_wire
from tests.agent.sample_programs import PROGRAMS, failure_of

GOLDEN = Path(__file__).resolve().parent / "golden"
REPO = str(Path(__file__).resolve().parents[2])
STDLIB = sysconfig.get_paths()["stdlib"]
REGEN = os.environ.get("DEBUGBROKER_REGEN") == "1"
pytestmark = pytest.mark.skipif(
    sys.version_info[:2] != (3, 11), reason="golden files are made with Python 3.11"
)


def normal_text(text: str) -> str:
    text = text.replace(REPO, "<repo>").replace(STDLIB, "<stdlib>")
    text = re.sub(r"0x[0-9a-fA-F]+", "0x?", text)
    # Library line numbers and carets move between patch releases.
    return re.sub(r'(File "<stdlib>[^"]*", line )\d+', r"\1?", text)


def normalise(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        if value.get("is_library"):
            value = value | {
                "lineno": 0,
                "end_lineno": None,
                "colno": None,
                "end_colno": None,
                "context_start": 0,
                "context": [],
                "locals": [],
            }
        return {k: normalise(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(item, key) for item in value]
    if key in ("id", "agent_id", "host", "frame_id") and isinstance(value, str):
        return f"<{key}>"
    if key in ("created", "pid"):
        return 0
    if isinstance(value, str):
        return normal_text(value)
    return value


def report_of(name: str) -> dict[str, Any]:
    report = capture_exception(
        failure_of(name),
        report_id="golden",
        agent_id="agent",
        options=Options(),
        registry=FrameRegistry(8, 10**8),
        app="golden",
    )
    wire: dict[str, Any] = to_wire(report)
    return dict(normalise(wire))


def strip_text_of_library_source(report: dict[str, Any]) -> dict[str, Any]:
    """The text without the source lines under library frames (they move between releases)."""
    kept: list[str] = []
    source_prefix: str | None = None
    for line in report["text"].splitlines(keepends=True):
        if source_prefix is not None and line.startswith(source_prefix):
            continue  # the library frame's source line or its carets
        source_prefix = None
        found = re.match(r'(.*?)  File "<stdlib>', line)
        if found:
            source_prefix = found.group(1) + "    "
        kept.append(line)
    return report | {"text": "".join(kept)}


@pytest.mark.parametrize("name", list(PROGRAMS))
def test_golden_report(name: str) -> None:
    report = strip_text_of_library_source(report_of(name))
    path = GOLDEN / f"{name}.json"
    rendered = json.dumps(report, indent=1, ensure_ascii=False, sort_keys=True) + "\n"
    if REGEN or not path.exists():
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(rendered, encoding="utf-8")
        if not REGEN:
            pytest.fail(f"wrote the missing golden file {path.name}; check it and commit it")
    assert json.loads(rendered) == json.loads(path.read_text(encoding="utf-8")), (
        f"{name}: the report differs from {path.name} (DEBUGBROKER_REGEN=1 rewrites it)"
    )
