"""Data-quality monitor: real capture of a really trained model against real baselines."""

from __future__ import annotations

import argparse
import base64
import json
import re
import shutil
from pathlib import Path

import pytest
from monitoring_cases import (
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

from pipeline_code.container.dogbreeds_jobs.monitoring import (
    capture_format,
    drift_statistics,
    monitor_data_quality,
)


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
    # The verdict the alarms read: judged, nothing drifted.
    assert summary["judged"] and summary["drifted_features"] == [] and not summary["prediction_drifted"]
    assert metric_values(metrics, "Judged") == {None: 1.0}
    assert metric_values(metrics, "DriftedFeatures") == {None: 0.0}
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
    # Model Monitor's wording first, with the distance and threshold, then our own facts.
    description = drifted["brightness"]["description"]
    match = re.fullmatch(
        r"Baseline drift distance: (\S+) exceeds threshold: (\S+)\. \((KS|PSI) distance; KS (\S+) "
        r"\(threshold 0\.2, p-value (\S+)\), PSI (\S+) \(threshold 0\.2\), over 120 images\)",
        description,
    )
    assert match, description
    distance, threshold, kind = float(match[1]), float(match[2]), match[3]
    measured = summary["distances"]["brightness"]
    assert distance == measured[kind.lower()] > threshold == 0.2
    assert float(match[4]) == pytest.approx(measured["ks"], abs=5e-5)
    assert float(match[5]) == pytest.approx(measured["ks_p_value"], rel=0.05)
    assert float(match[6]) == pytest.approx(measured["psi"], abs=5e-5)
    # Geometry does not change with brightness: no false alarm there.
    assert not {"width", "height", "aspect_ratio"} & set(drifted)
    assert metric_values(metrics, "FeaturePSI")["brightness"] > 1.0
    assert metric_values(metrics, "Violations")[None] == len(violations)
    assert "brightness" in summary["drifted_features"]
    assert metric_values(metrics, "DriftedFeatures")[None] == len(summary["drifted_features"]) >= 1
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
    # No data is not "no drift": not judged, and nothing an alarm reads is published.
    assert metric_values(metrics, "Judged") == {None: 0.0}
    assert metric_values(metrics, "DriftedFeatures") == {} and metric_values(metrics, "FeaturePSI") == {}
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


def _copy_of(clean_capture, tmp_path: Path) -> tuple[Path, Path, list]:
    source, sent = clean_capture
    capture_root = tmp_path / "capture"
    shutil.copytree(source, capture_root)
    hour = next((capture_root / ENDPOINT).glob("AllTraffic/2026/11/20/09"))
    return capture_root, hour, sent


def test_reused_inference_ids_are_analysed_once(monitor_case, clean_capture, tmp_path):
    capture_root, hour, sent = _copy_of(clean_capture, tmp_path)
    [first_file] = sorted(hour.glob("*.jsonl"))
    lines = first_file.read_text().splitlines(keepends=True)
    # The same 40 lines stored again in another object (a retried upload) ...
    (hour / "59-59-998-copy.jsonl").write_text("".join(lines[:40]))
    # ... and a different request that reuses a caller's inferenceId: an 8x8 image, far smaller
    # than any of the window's, which would change the width minimum if it were folded.
    reused = capture_format.build_record(
        request_body=tiny_png(),
        request_content_type="image/png",
        response_body=json.dumps({"predictions": [{"breed": "beagle", "confidence": 0.5}]}).encode(),
        response_content_type="application/json",
        inference_id=sent[7]["inference_id"],
        inference_time=WINDOW_START,
    )
    (hour / "59-59-999-reused.jsonl").write_text(reused.to_json_line())
    # Two workers: a duplicate and its first occurrence are read by different processes.
    summary, _, _, folder = _run(capture_root, monitor_case, tmp_path, "--workers", "2")
    assert summary["records_analysed"] == summary["images_analysed"] == 300
    assert summary["duplicate_records"] == 41
    assert len(summary["duplicate_examples"]) == 20
    assert "59-59-998-copy.jsonl:1: " in summary["duplicate_examples"][0]
    statistics = json.loads((folder / "statistics.json").read_text())
    by_name = {f["name"]: f for f in statistics["features"]}
    assert by_name["width"]["numerical_statistics"]["common"]["num_present"] == 300
    assert by_name["width"]["numerical_statistics"]["min"] > 8


def test_unknown_event_versions_are_counted_per_version_and_analysed(monitor_case, clean_capture, tmp_path):
    capture_root, hour, _ = _copy_of(clean_capture, tmp_path)
    base = capture_format.build_record(
        request_body=tiny_png(),
        request_content_type="image/png",
        response_body=b'{"predictions": [{"breed": "beagle", "confidence": 0.9}]}',
        response_content_type="application/json",
        inference_time=WINDOW_START,
    ).to_dict()
    lines = []
    for number, version in enumerate(["1", "1", "2.0", None]):
        document = json.loads(json.dumps(base))
        document["eventMetadata"]["eventId"] = f"versioned-{number}"
        if version is None:
            del document["eventVersion"]
        else:
            document["eventVersion"] = version
        lines.append(json.dumps(document) + "\n")
    (hour / "59-59-999-versions.jsonl").write_text("".join(lines))
    summary, _, _, _ = _run(capture_root, monitor_case, tmp_path)
    assert summary["unknown_event_versions"] == {"1": 2, "2.0": 1, "<missing>": 1}
    assert "59-59-999-versions.jsonl:1: eventVersion '1' is not one of ['0']" in (
        summary["unknown_event_version_examples"][0]
    )
    assert summary["records_analysed"] == summary["images_analysed"] == 304  # analysed all the same


def _accumulators(**overrides):
    """Real accumulators with made-up contents, for the wording of each violation."""
    numeric = drift_statistics.NumericAccumulator("width", "Integral", None)
    numeric.add_many([10, 12, "wide", "tall", None])
    label = drift_statistics.CategoricalAccumulator("predicted_label", "String", None)
    label.add_many(["beagle"] * 6 + ["poodle"] * 4)
    return {"width": numeric, "predicted_label": label, **overrides}


def _arguments(**overrides):
    values = {
        "min_records": 1,
        "completeness_tolerance": 0.01,
        "psi_threshold": 0.2,
        "ks_threshold": 0.2,
        "drift_significance": 0.01,
        "prediction_distance_threshold": 0.2,
    }
    return argparse.Namespace(**{**values, **overrides})


def test_violations_use_model_monitor_wording_then_our_numbers():
    constraints = {
        "monitoring_config": {"datatype_check_threshold": 0.1, "domain_content_threshold": 0.1},
        "features": [
            {"name": "width", "inferred_type": "Integral", "completeness": 1.0},
            {
                "name": "predicted_label",
                "inferred_type": "String",
                "completeness": 1.0,
                "string_constraints": {"domains": ["beagle"]},
            },
            {"name": "height", "inferred_type": "Integral", "completeness": 1.0},
        ],
    }
    extra = drift_statistics.CategoricalAccumulator("format", "String", None)
    extra.add_many(["PNG"])
    violations, _ = monitor_data_quality.check_constraints(
        _accumulators(format=extra), [constraints], 10, _arguments()
    )
    described = {(v["feature_name"], v["constraint_check_type"]): v["description"] for v in violations}
    columns = "Number of columns in current dataset: 3, Number of columns in baseline constraints: 3"
    assert described[("height", "missing_column_check")] == (
        f"There are missing columns in current dataset. {columns}. "
        "Baseline feature height is not measured by this monitor."
    )
    assert described[("format", "extra_column_check")] == (
        f"There are extra columns in current dataset. {columns}. Feature format has no baseline constraint."
    )
    assert described[("width", "completeness_check")] == (
        "Data completeness requirement is not met. Expected completeness: 100.0%. "
        "Observed: Only 40.0% of data is complete. (2 of 5 values present; tolerance 0.01)"
    )
    assert described[("width", "data_type_check")] == (
        "Data type match requirement is not met. Expected data type: Integral, Expected match: 90.0%. "
        "Observed: Only 60.0% of data is Integral. (2 of 5 values are not Integral)"
    )
    assert described[("predicted_label", "categorical_values_check")] == (
        "Categorical value match requirement is not met. Expected match: 90.0%. "
        "Observed: Only 60.0% of data is within the baseline domain. "
        "(4 of 10 values of predicted_label are outside it)"
    )


def test_a_categorical_drift_names_its_distance_and_threshold():
    baseline = {
        "name": "predicted_label",
        "string_statistics": {
            "distribution": {"categorical": {"buckets": [{"value": "beagle", "count": 10.0}]}}
        },
    }
    label = drift_statistics.CategoricalAccumulator("predicted_label", "String", baseline)
    label.add_many(["beagle"] * 6 + ["poodle"] * 4)
    constraints = {"features": [{"name": "predicted_label", "inferred_type": "String"}]}
    violations, distances = monitor_data_quality.check_constraints(
        {"predicted_label": label}, [constraints], 10, _arguments(prediction_distance_threshold=0.25)
    )
    assert distances["predicted_label"]["l_infinity"] == 0.4
    assert [v["description"] for v in violations] == [
        "Baseline drift distance: 0.4 exceeds threshold: 0.25. "
        "(L-infinity distance of the value shares over 10 values)"
    ]


def test_a_window_too_small_to_judge_publishes_counts_but_no_drift(monitor_case, tmp_path):
    """Drifted images, but fewer than --min-records: the distances are in the summary for a person
    to read, and the metrics the alarms watch are not published at all."""
    capture_root = tmp_path / "capture"
    capture_traffic(monitor_case, capture_root, drift="brightness", limit=20)
    summary, violations, metrics, _ = _run(capture_root, monitor_case, tmp_path, "--min-records", "30")
    assert summary["images_analysed"] == 20 and not summary["judged"]
    assert summary["distances"]["brightness"]["psi"] > 1.0  # measured, reported...
    assert summary["drifted_features"] == [] and not summary["prediction_drifted"]  # ...not judged
    assert not [v for v in violations if v["constraint_check_type"] == "baseline_drift_check"]
    assert metric_values(metrics, "RecordsAnalysed") == {None: 20.0}
    assert metric_values(metrics, "Judged") == {None: 0.0}
    for name in ("DriftedFeatures", "FeaturePSI", "FeatureKS", "PredictedBreedDistance"):
        assert metric_values(metrics, name) == {}, name
