"""Reports of real sample programs against golden JSON files (``DEBUGBROKER_REGEN=1`` rewrites).

Volatile fields are normalised: ids, times, pids, hosts, frame ids, memory addresses and
paths (the repository becomes ``<repo>``, the standard library ``<stdlib>``). Library frames
keep their file and function but not their line numbers, source or locals, which change with
the Python patch release.

The files in ``golden/`` are Python 3.11's, and 3.12's too (it shows the same). 3.10 and 3.13
have their own in ``golden/py310/`` and ``golden/py313/``, because what CPython itself shows
differs: 3.10 has no ``co_qualname`` (plain function names), no column positions (no
``~~~^^^`` markers, no columns) and the ``exceptiongroup`` backport's group classes; 3.13
places its markers by other rules, and its json module words one error differently. Whatever
else they hold must equal 3.11's file (``test_other_pythons_differ_only_where_cpython_does``).
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

from debugbroker.agent.capture.exceptions import build_report
from debugbroker.agent.evals.held_frames import FrameRegistry
from debugbroker.agent.options import Options
from debugbroker.protocol import to_wire
from tests.agent.sample_programs import PROGRAMS, failure_of

GOLDEN_311 = Path(__file__).resolve().parent / "golden"
# 3.12 shows exactly what 3.11 shows: it shares 3.11's files.
_VERSION = sys.version_info[:2]
_OWN_FILES = _VERSION not in ((3, 11), (3, 12))
GOLDEN = GOLDEN_311 / f"py{_VERSION[0]}{_VERSION[1]}" if _OWN_FILES else GOLDEN_311
REPO = str(Path(__file__).resolve().parents[2])
STDLIB = sysconfig.get_paths()["stdlib"]
REGEN = os.environ.get("DEBUGBROKER_REGEN") == "1"


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
    report = build_report(
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


# --- the other Pythons' files against 3.11's ------------------------------------------------

# The messages of the standard library's own errors that changed after 3.11.
_STDLIB_MESSAGES = {
    "py313": {
        "Expecting property name enclosed in double quotes: line 1 column 13 (char 12)": (
            "Illegal trailing comma before end of object: line 1 column 12 (char 11)"
        ),
    },
}


def as_on(report: dict[str, Any], version: str) -> dict[str, Any]:
    """3.11's ``report`` as ``version`` must show it, leaving out the text.

    The text (3.10 has no markers, 3.13 places them by other rules) is compared with the
    running interpreter's own ``traceback`` by the tests of text_parity, on every Python.
    """
    messages = _STDLIB_MESSAGES.get(version, {})

    def frame(info: dict[str, Any]) -> dict[str, Any]:
        if version == "py310":  # no co_qualname, no co_positions
            info = info | {"end_lineno": None, "colno": None, "end_colno": None}
            info["function"] = info["function"].rsplit(".", 1)[-1]
        return info

    def exception(info: dict[str, Any]) -> dict[str, Any]:
        info = info | {
            "message": messages.get(info["message"], info["message"]),
            "frames": [frame(f) for f in info["frames"]],
            "exceptions": [exception(e) for e in info["exceptions"]],
        }
        if version == "py310" and info["type_name"].endswith("ExceptionGroup"):
            info["module"] = "exceptiongroup"  # the backport's classes
        return info

    exceptions = [exception(e) for e in report["exceptions"]]
    return report | {
        "text": None,
        "exceptions": exceptions,
        "message": exceptions[-1]["message"],
    }


@pytest.mark.parametrize("version", ["py310", "py313"])
@pytest.mark.parametrize("name", list(PROGRAMS))
def test_other_pythons_differ_only_where_cpython_does(version: str, name: str) -> None:
    theirs = json.loads((GOLDEN_311 / version / f"{name}.json").read_text(encoding="utf-8"))
    ours = json.loads((GOLDEN_311 / f"{name}.json").read_text(encoding="utf-8"))
    assert theirs | {"text": None} == as_on(ours, version)
    assert theirs["text"] != ours["text"]  # else this Python could share 3.11's file
