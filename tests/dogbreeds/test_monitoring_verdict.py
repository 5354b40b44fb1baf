"""Clean traffic leaves every synthesised alarm OK; drifted traffic fires the drift alarm. Over
several seeds, through the real data-quality job and the alarms of the dev assembly."""

from __future__ import annotations

import dataclasses
import shutil
from datetime import timedelta

import monitoring_cases
import pytest
from monitoring_cases import WINDOW_START, capture_traffic, generate, run_monitor

from dogbreeds.cloud_assembly import CloudAssembly, synthesize
from dogbreeds.local_alarm_actions import alarm_definitions
from dogbreeds.local_alarms import ALARM, AlarmStates, evaluate_all, read_metrics_sink

ENDPOINT = "dogbreeds-dev-endpoint"  # what the dev assembly's alarms watch
NAMESPACE = "dogbreeds/dev"
FEATURE_DRIFT = "dogbreeds-dev-monitoring-feature-drift"
# The alarms a data-quality run alone decides (no-capture-data needs two periods of runs; the
# accuracy alarm reads the model-quality monitor).
DATA_QUALITY_ALARMS = (FEATURE_DRIFT, "dogbreeds-dev-monitoring-prediction-drift")


@pytest.fixture(scope="module")
def small_baseline_case(monitor_case, tmp_path_factory):
    """The monitor case with the demo's proportions: prediction baselines from a test split of a
    few dozen images (the PSI of such a small sample against a window of 180 is large by chance)."""
    run = tmp_path_factory.mktemp("small-baseline") / "pipeline-runs" / "exec-1"
    shutil.copytree(monitor_case.run / "Preprocess", run / "Preprocess")
    test_split = generate(run.parent / "test-split", seed=5, per_breed=10)
    monitoring_cases.write_evaluation_baselines(monitor_case.service, test_split, run, monitor_case.classes)
    return dataclasses.replace(monitor_case, run=run)


@pytest.fixture(scope="module")
def alarms():
    assembly = CloudAssembly.load(synthesize("dev", stream=None))
    return [alarm for alarm in alarm_definitions(assembly) if alarm.name in DATA_QUALITY_ALARMS]


def _judge(case, capture_root, out, alarms):
    result = run_monitor(
        "monitor_data_quality.py",
        "--capture-uri", str(capture_root / monitoring_cases.ENDPOINT),
        "--output-uri", str(out / "reports"),
        "--window-end", "2026-11-20T10:02:00Z",
        "--baseline-uri", str(case.run),
        "--endpoint-name", ENDPOINT,
        "--metrics-sink", str(out / "metrics.jsonl"),
        "--metrics-namespace", NAMESPACE,
        "--workers", "1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    at = WINDOW_START + timedelta(hours=2)  # just after the period the run's data points fall in
    evaluations = evaluate_all(alarms, read_metrics_sink(out / "metrics.jsonl"), AlarmStates(out), at=at)
    return result.stdout, {e.alarm.name: e for e in evaluations}


@pytest.mark.parametrize("seed", [21, 22, 23])
def test_clean_traffic_keeps_every_alarm_ok_and_drift_fires_the_drift_alarm(
    small_baseline_case, alarms, tmp_path, seed
):
    case = small_baseline_case
    images = generate(tmp_path / "images", seed=seed, per_breed=60)  # unseen pictures of the breeds
    case_for_seed = dataclasses.replace(case, clean_dir=images)
    clean_capture = tmp_path / "clean"
    capture_traffic(case_for_seed, clean_capture)
    stdout, states = _judge(case, clean_capture, tmp_path / "clean-run", alarms)
    assert {name: e.state for name, e in states.items()} == dict.fromkeys(DATA_QUALITY_ALARMS, "OK"), (
        stdout, {name: e.reason for name, e in states.items()},
    )  # fmt: skip

    drifted_capture = tmp_path / "drifted"
    capture_traffic(case_for_seed, drifted_capture, drift="brightness")
    stdout, states = _judge(case, drifted_capture, tmp_path / "drift-run", alarms)
    assert states[FEATURE_DRIFT].state == ALARM, (stdout, states[FEATURE_DRIFT].reason)
    assert "brightness" in stdout
