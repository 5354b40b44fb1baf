"""Data-quality monitor: real capture of a really trained model against real baselines."""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path

import monitor_fixtures
from monitor_fixtures import (
    ENDPOINT,
    WINDOW_END,
    WINDOW_START,
    capture_traffic,
    metric_values,
    read_metrics,
    run_monitor,
    tiny_png,
    write_tiny_capture,
)

from pipeline_code.container import capture_format

# Session fixtures shared with the other monitoring tests (one trained model for all).
monitor_case = monitor_fixtures.monitor_case
clean_capture = monitor_fixtures.clean_capture


def _run(capture_root: Path, case, out: Path, *extra: str):
    result = run_monitor(
        "monitor_data_quality.py",
        "--capture-uri",
        str(capture_root / ENDPOINT),
        "--output-uri",
        str(out / "reports"),
        "--window-end",
        "2026-11-20T10:07:31.123Z",
        "--baseline-uri",
        str(case.run),
        "--endpoint-name",
        ENDPOINT,
        "--metrics-sink",
        str(out / "metrics.jsonl"),
        "--metrics-namespace",
        "dogbreeds/test",
        "--workers",
        "1",
        *extra,
    )
    assert result.returncode == 0, result.stderr
    [summary_file] = (out / "reports").rglob("summary.json")
    folder = summary_file.parent
    summary = json.loads((folder / "summary.json").read_text())
    violations = json.loads((folder / "constraint_violations.json").read_text())["violations"]
    return summary, violations, read_metrics(out / "metrics.jsonl"), folder


def test_clean_traffic_from_unseen_images_raises_no_violation(monitor_case, clean_capture, tmp_path):
    capture_root, sent = clean_capture
    # Two worker processes: the parallel path must give what the serial one gives.
    summary, violations, metrics, folder = _run(capture_root, monitor_case, tmp_path, "--workers", "2")
    assert violations == []
    assert summary["records_analysed"] == summary["images_analysed"] == len(sent) == 300
    assert summary["corrupt_records"] == 0
    assert 0 < summary["max_feature_psi"] < 0.2
    assert metric_values(metrics, "RecordsAnalysed") == {None: 300.0}
    assert metric_values(metrics, "Violations") == {None: 0.0}
    psi = metric_values(metrics, "FeaturePSI")
    assert {"brightness", "sharpness", "confidence"} <= set(psi) and max(psi.values()) < 0.2
    # Every request is the exact put_metric_data shape, batched.
    for request in metrics:
        assert set(request) == {"Namespace", "MetricData"} and request["Namespace"] == "dogbreeds/test"
        assert 0 < len(request["MetricData"]) <= 20
        for datum in request["MetricData"]:
            assert {"MetricName", "Dimensions", "Timestamp", "Value", "Unit"} == set(datum)
            assert datum["Timestamp"] == "2026-11-20T10:00:00Z"
            assert {"Name": "Endpoint", "Value": ENDPOINT} in datum["Dimensions"]
            assert {"Name": "Monitor", "Value": "data_quality"} in datum["Dimensions"]
    statistics = json.loads((folder / "statistics.json").read_text())
    by_name = {f["name"]: f for f in statistics["features"]}
    assert by_name["brightness"]["numerical_statistics"]["common"]["num_present"] == 300
    assert by_name["predicted_label"]["string_statistics"]["distinct_count"] == len(monitor_case.classes)
    html = (folder / "report.html").read_text()
    assert "<svg" in html and "No violations." in html and "brightness" in html


def test_brightness_drift_is_detected_and_the_violation_names_the_feature(monitor_case, tmp_path):
    capture_root = tmp_path / "capture"
    capture_traffic(monitor_case, capture_root, drift="brightness", limit=120)
    summary, violations, metrics, folder = _run(capture_root, monitor_case, tmp_path)
    drifted = {
        v["feature_name"]: v for v in violations if v["constraint_check_type"] == "baseline_drift_check"
    }
    assert "brightness" in drifted
    assert "brightness drifted from the baseline: PSI" in drifted["brightness"]["description"]
    # Geometry does not change with brightness: no false alarm there.
    assert not {"width", "height", "aspect_ratio"} & set(drifted)
    assert metric_values(metrics, "FeaturePSI")["brightness"] > 1.0
    assert metric_values(metrics, "Violations")[None] == len(violations)
    assert metric_values(metrics, "MaxFeaturePSI")[None] == summary["max_feature_psi"]
    html = (folder / "report.html").read_text()
    assert "brightness" in html and 'class="bad">drift' in html


def test_corrupt_lines_are_counted_and_skipped(monitor_case, clean_capture, tmp_path):
    source, _ = clean_capture
    capture_root = tmp_path / "capture"
    shutil.copytree(source, capture_root)
    hour = next((capture_root / ENDPOINT).glob("AllTraffic/2026/11/20/09"))
    bad_image = capture_format.build_record(
        request_body=b"not an image at all",
        request_content_type="image/jpeg",
        response_body=b'{"predictions": []}',
        response_content_type="application/json",
        inference_time=WINDOW_START,
    )
    (hour / "59-59-999-broken.jsonl").write_text(
        "{this is not json\n"
        '{"captureData": {}, "eventMetadata": {"eventId": "x", "inferenceTime": "2026-11-20T09:10:00Z"}}\n'
        "\n" + bad_image.to_json_line()
    )
    summary, violations, metrics, _ = _run(capture_root, monitor_case, tmp_path)
    assert summary["corrupt_records"] == 2
    assert (
        len(summary["corrupt_examples"]) == 2 and "59-59-999-broken.jsonl:1" in summary["corrupt_examples"][0]
    )
    assert summary["records_analysed"] == 301
    assert summary["undecodable"] == {"not_an_image": 1}
    assert metric_values(metrics, "CorruptRecords") == {None: 2.0}
    # One missing image in 301 is within the completeness tolerance: no violation for it.
    assert [v for v in violations if v["constraint_check_type"] == "completeness_check"] == []


def test_empty_window_reports_zero_records(monitor_case, clean_capture, tmp_path):
    capture_root, _ = clean_capture
    # The capture is in 09:00-10:00; a window ending at 09:00 holds nothing.
    summary, violations, metrics, folder = _run(
        capture_root, monitor_case, tmp_path, "--window-end-override", "2026-11-20T09:30:00Z"
    )
    # <output>/yyyy/mm/dd/hh of the window's end, then the run's own folder.
    assert folder.parent == tmp_path / "reports" / "2026" / "11" / "20" / "09"
    assert folder.name == summary["run_id"]
    assert summary["records_analysed"] == 0 and summary["images_analysed"] == 0
    assert violations == []
    assert metric_values(metrics, "RecordsAnalysed") == {None: 0.0}
    assert metric_values(metrics, "MaxFeaturePSI") == {}  # no data is not "no drift"
    # A capture folder that does not exist yet (no traffic ever) is an empty window too.
    summary, _, _, _ = _run(tmp_path / "nothing-here", monitor_case, tmp_path / "second")
    assert summary["records_analysed"] == 0


def test_two_runs_of_the_same_hour_keep_their_own_reports(monitor_case, tmp_path):
    """A retry or backfill of an hour must not overwrite the reports of the run before it."""
    capture_root = write_tiny_capture(tmp_path / "capture", 40)
    common = [
        "--capture-uri", str(capture_root / ENDPOINT), "--output-uri", str(tmp_path / "reports"),
        "--window-end", WINDOW_END, "--baseline-uri", str(monitor_case.run),
        "--metrics-sink", str(tmp_path / "metrics.jsonl"), "--workers", "1",
    ]  # fmt: skip
    first = run_monitor("monitor_data_quality.py", *common, "--run-id", "exec-1")
    second = run_monitor("monitor_data_quality.py", *common)  # by hand: a generated run id
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    hour = tmp_path / "reports" / "2026" / "11" / "20" / "10"
    folders = sorted(p.name for p in hour.iterdir())
    assert len(folders) == 2 and "exec-1" in folders
    generated = next(name for name in folders if name != "exec-1")
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{6}", generated)
    for name in folders:
        assert {p.name for p in (hour / name).iterdir()} == {
            "statistics.json", "constraint_violations.json", "report.html", "summary.json"
        }
        assert json.loads((hour / name / "summary.json").read_text())["run_id"] == name


def test_json_batch_requests_count_every_image(monitor_case, tmp_path):
    image = tiny_png()
    encoded = base64.b64encode(image).decode()
    body = json.dumps({"instances": [encoded, {"image": encoded}]}).encode()
    result = monitor_case.service.invoke(body, "application/json", "application/json")
    assert result.status == 200
    with capture_format.CaptureWriter(tmp_path / "capture", ENDPOINT) as writer:
        for _ in range(3):
            writer.write(
                capture_format.build_record(
                    request_body=body,
                    request_content_type="application/json",
                    response_body=result.body,
                    response_content_type="application/json",
                    inference_time=WINDOW_START,
                )
            )
    summary, _, _, folder = _run(tmp_path / "capture", monitor_case, tmp_path)
    assert summary["records_analysed"] == 3 and summary["images_analysed"] == 6
    statistics = json.loads((folder / "statistics.json").read_text())
    width = next(f for f in statistics["features"] if f["name"] == "width")["numerical_statistics"]
    assert width["min"] == width["max"] == 8


def test_missing_baselines_fail_with_the_file_named(tmp_path):
    result = run_monitor(
        "monitor_data_quality.py",
        "--capture-uri",
        str(tmp_path),
        "--output-uri",
        str(tmp_path / "out"),
        "--window-end",
        WINDOW_END,
        "--baseline-uri",
        str(tmp_path / "no-run"),
        "--metrics-sink",
        str(tmp_path / "m.jsonl"),
        "--workers",
        "1",
    )
    assert result.returncode == 1
    assert "data-quality statistics baseline" in result.stderr
    assert str(tmp_path / "no-run" / "Preprocess" / "baseline" / "statistics.json") in result.stderr


def test_bad_arguments_name_the_argument(tmp_path):
    common = ["--capture-uri", str(tmp_path), "--output-uri", str(tmp_path), "--workers", "1"]
    result = run_monitor(
        "monitor_data_quality.py", *common, "--window-end", WINDOW_END, "--psi-threshold", "0"
    )
    assert result.returncode == 2 and "--psi-threshold must be above 0" in result.stderr
    result = run_monitor(
        "monitor_data_quality.py", *common, "--window-end", "yesterday", "--baseline-uri", "x"
    )
    assert result.returncode == 1 and "'yesterday' is not an ISO 8601 time" in result.stderr
    result = run_monitor(
        "monitor_data_quality.py",
        *common,
        "--window-end",
        WINDOW_END,
        "--window-hours",
        "0",
        "--baseline-uri",
        "x",
    )
    assert result.returncode == 1 and "window hours must be between 1 and" in result.stderr
    result = run_monitor(
        "monitor_data_quality.py", *common, "--window-end", WINDOW_END, "--run-id", "../escape"
    )
    assert result.returncode == 2 and "run id '../escape' must be 1-128 letters" in result.stderr
