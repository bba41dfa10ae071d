"""Held-frame caps from the environment, and the registry's record of released reports."""

from __future__ import annotations

import pytest

from debugbroker.agent.evals.held_frames import FrameRegistry
from debugbroker.agent.options import Options
from tests.agent.test_frames import Payload, dead_frame


def test_caps_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEBUGBROKER_HELD_REPORTS", "5")
    monkeypatch.setenv("DEBUGBROKER_HELD_MB", "1.5")
    options = Options.from_environment()
    assert (options.held_reports, options.held_bytes) == (5, 1536 * 1024)
    # Explicit keyword options win over the environment.
    assert Options.from_environment(held_reports=7).held_reports == 7


def test_defaults_without_the_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEBUGBROKER_HELD_REPORTS", raising=False)
    monkeypatch.delenv("DEBUGBROKER_HELD_MB", raising=False)
    options = Options.from_environment()
    assert (options.held_reports, options.held_bytes) == (64, 32 * 1024 * 1024)


@pytest.mark.parametrize("text", ["lots", "0", "-2", "nan", "inf", "1e"])
def test_a_bad_value_warns_and_keeps_the_default(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    monkeypatch.setenv("DEBUGBROKER_HELD_REPORTS", text)
    monkeypatch.setenv("DEBUGBROKER_HELD_MB", text)
    options = Options.from_environment()
    assert (options.held_reports, options.held_bytes) == (64, 32 * 1024 * 1024)
    err = capsys.readouterr().err
    assert f"ignoring DEBUGBROKER_HELD_REPORTS={text!r}: expected a positive number" in err
    assert f"ignoring DEBUGBROKER_HELD_MB={text!r}" in err


def test_the_registry_records_what_it_released_once() -> None:
    registry = FrameRegistry(max_reports=2, max_bytes=10**8)
    for report_id in ("r1", "r2", "r3"):
        registry.hold(report_id, dead_frame(Payload()))
    assert registry.held_reports() == ("r2", "r3")
    assert registry.report_count == 2
    registry.release_report("r3")
    registry.release_report("unknown")  # nothing held: nothing recorded
    assert registry.has_released
    assert registry.take_released() == ("r1", "r3")
    assert not registry.has_released and registry.take_released() == ()
