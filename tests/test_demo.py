"""The demo's core, end to end through the real CLI: train, register, approve, serve, monitor."""

from __future__ import annotations

import json
from pathlib import Path

from dogbreeds.cloud_assembly import synthesize
from dogbreeds.demo import DEFAULTS, SUMMARY_FILE, Demo


def test_demo_core_runs_the_lifecycle_and_reports_the_drift(tmp_path):
    # A model good enough for dev's live-accuracy alarm (0.7): clean traffic must leave every
    # alarm OK, and a weak model would rightly fire that one.
    options = {**DEFAULTS, "traffic": 120, "threshold": 0.5}
    summary = Demo(tmp_path / "demo", options).run()

    assert summary.registered_version == 1 and summary.approved
    assert summary.test_accuracy is not None and summary.test_accuracy >= 0.5
    assert summary.requests_sent == 240
    assert "brightness" in summary.drifted_features
    assert "brightness" not in summary.clean_violations
    assert summary.live_accuracy is not None and summary.live_accuracy > 0.4
    # The synthesised alarms, evaluated as CloudWatch would: clean traffic leaves every one OK...
    assert summary.clean_alarms and set(summary.clean_alarms.values()) == {"OK"}, summary.clean_alarms
    # ...the drifted traffic fires the feature-drift alarm, and its change reaches the retrain guard.
    assert summary.drift_alarms["dogbreeds-dev-monitoring-feature-drift"] == "ALARM"
    assert any("feature-drift" in decision for decision in summary.retrain_decisions)
    assert len(summary.reports) == 2 and all(path.endswith("report.html") for path in summary.reports)
    for path in summary.reports:
        assert "<html" in Path(path).read_text().lower()
        # <monitor>/yyyy/mm/dd/hh/<execution id>/report.html: the clean run's files are kept beside
        # the drifted run's, and the summary points at the drifted (second) run.
        assert len(list(Path(path).parents[5].rglob("summary.json"))) == 2
    text = summary.text()
    assert "registered model version:        1" in text and "brightness" in text
    saved = json.loads((tmp_path / "demo" / SUMMARY_FILE).read_text())
    assert saved["drifted_features"] == summary.drifted_features

    # A script's gate: the same monitoring run, with --fail-on-violations, exits 3 and says why.
    import subprocess
    import sys

    gate = subprocess.run(
        [sys.executable, "-m", "dogbreeds", "local", "monitor", "--workdir", ".", "--window-hours", "2",
         "--fail-on-violations", "--assembly", str(synthesize("dev", stream=None))],
        cwd=tmp_path / "demo", capture_output=True, text=True,
    )  # fmt: skip
    assert gate.returncode == 3, gate.stderr[-2000:]
    assert "baseline_drift_check" in gate.stdout and "feature-drift" in gate.stdout

    # Runs again from a clean slate: still version 1, the server from the first run is gone.
    again = Demo(tmp_path / "demo", options).run()
    assert again.registered_version == 1


def test_demo_refuses_to_empty_a_folder_it_did_not_make(tmp_path):
    import pytest

    from dogbreeds.demo import DemoError

    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(DemoError, match="not made by the demo"):
        Demo(tmp_path, dict(DEFAULTS)).run()
    assert (tmp_path / "precious.txt").read_text() == "keep me"
