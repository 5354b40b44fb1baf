"""Model-quality monitor: captured predictions joined with SageMaker-format ground truth."""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

from monitoring_cases import ENDPOINT, metric_values, read_metrics, run_monitor

from dogbreeds.ground_truth import read_records, write_ground_truth

LABELLED_AT = datetime(2026, 11, 20, 9, 40, tzinfo=UTC)


def _record_file(sent: list[dict], path: Path) -> Path:
    path.write_text("".join(json.dumps(entry) + "\n" for entry in sent))
    return path


def _run(capture_root: Path, ground_truth: Path, case, out: Path, *extra: str):
    result = run_monitor(
        "monitor_model_quality.py",
        "--capture-uri",
        str(capture_root / ENDPOINT),
        "--ground-truth-uri",
        str(ground_truth),
        "--output-uri",
        str(out / "reports"),
        "--window-end",
        "2026-11-20T10:02:00Z",
        "--baseline-uri",
        str(case.run),
        "--endpoint-name",
        ENDPOINT,
        "--metrics-sink",
        str(out / "metrics.jsonl"),
        *extra,
    )
    assert result.returncode == 0, result.stderr
    [summary_file] = (out / "reports").rglob("summary.json")
    summary = json.loads(summary_file.read_text())
    violations = json.loads((summary_file.parent / "constraint_violations.json").read_text())["violations"]
    return summary, violations, read_metrics(out / "metrics.jsonl"), summary_file.parent


def test_correct_labels_keep_accuracy_and_raise_no_violation(monitor_case, clean_capture, tmp_path):
    capture_root, sent = clean_capture
    records = read_records(_record_file(sent, tmp_path / "traffic.jsonl"))
    written = write_ground_truth(records, str(tmp_path / "gt"), when=LABELLED_AT)
    assert "/2026/11/20/09/groundtruth-" in written["location"]
    summary, violations, metrics, folder = _run(capture_root, tmp_path / "gt", monitor_case, tmp_path)
    baseline = monitor_case.evaluation["multiclass_classification_metrics"]["accuracy"]["value"]
    assert summary["labelled_records"] == summary["records_analysed"] == 300
    assert summary["ground_truth_coverage"] == 1.0
    assert abs(summary["metrics"]["accuracy"]["window"] - baseline) <= 0.05
    assert summary["metrics"]["accuracy"]["baseline"] == baseline
    assert violations == []
    assert metric_values(metrics, "Accuracy")[None] == summary["metrics"]["accuracy"]["window"]
    assert metric_values(metrics, "GroundTruthCoverage") == {None: 1.0}
    assert metric_values(metrics, "LabelledRecords") == {None: 300.0}
    assert set(metric_values(metrics, "MacroF1")) == {None} and set(
        metric_values(metrics, "Top5Accuracy")
    ) == {None}
    statistics = json.loads((folder / "statistics.json").read_text())
    matrix = statistics["multiclass_classification_metrics"]["confusion_matrix"]
    assert sum(sum(row.values()) for row in matrix.values()) == 300
    assert set(statistics["per_class_metrics"]) == set(monitor_case.classes)
    assert "confusion matrix" in (folder / "report.html").read_text()


def test_wrong_labels_drop_accuracy_and_raise_a_violation(monitor_case, clean_capture, tmp_path):
    capture_root, sent = clean_capture
    records = read_records(_record_file(sent, tmp_path / "traffic.jsonl"))
    written = write_ground_truth(records, str(tmp_path / "gt"), wrong_fraction=0.5, seed=3, when=LABELLED_AT)
    assert written["wrong"] == 150
    summary, violations, metrics, _ = _run(capture_root, tmp_path / "gt", monitor_case, tmp_path)
    accuracy = summary["metrics"]["accuracy"]["window"]
    assert accuracy < summary["metrics"]["accuracy"]["baseline"] - 0.3
    # Model Monitor's sentence first, with the value and the threshold compared against.
    environment = next(v for v in violations if "environment" in v["description"])
    match = re.fullmatch(
        r"Metric accuracy with (\S+) was LessThanThreshold (\S+)\. \(the environment's accuracy "
        r"threshold\)",
        environment["description"],
    )
    assert match and float(match[1]) == accuracy and float(match[2]) == 0.7
    baseline = summary["metrics"]["accuracy"]["baseline"]
    [against_baseline] = [
        v for v in violations if v["metric_name"] == "accuracy" and "tolerance" in v["description"]
    ]
    assert against_baseline["description"] == (
        f"Metric accuracy with {accuracy} was LessThanThreshold {round(baseline - 0.05, 10)}. "
        f"(baseline {baseline}, tolerance 0.05)"
    )
    by_metric = {(v["metric_name"], v["description"].split("(")[-1]) for v in violations}
    assert any(name == "accuracy" and "baseline" in why for name, why in by_metric)
    assert any(name == "accuracy" and "accuracy threshold" in why for name, why in by_metric)
    assert all(v["constraint_check_type"] == "LessThanThreshold" for v in violations)
    assert metric_values(metrics, "Violations")[None] == len(violations) >= 2
    assert metric_values(metrics, "Accuracy")[None] == accuracy


def test_partial_late_and_corrupt_ground_truth(monitor_case, clean_capture, tmp_path):
    capture_root, sent = clean_capture
    # A third of the labels arrive in the next hour (still read: labels lag predictions) ...
    write_ground_truth(
        read_records(_record_file(sent[:100], tmp_path / "a.jsonl")),
        str(tmp_path / "gt"),
        when=datetime(2026, 11, 20, 10, 1, tzinfo=UTC),
    )
    # ... a third two hours later (outside --ground-truth-extra-hours 1) ...
    write_ground_truth(
        read_records(_record_file(sent[100:200], tmp_path / "b.jsonl")),
        str(tmp_path / "gt"),
        when=datetime(2026, 11, 20, 11, 1, tzinfo=UTC),
    )
    # ... and one file has corrupt lines besides a label for an id nobody sent.
    hour = tmp_path / "gt" / "2026" / "11" / "20" / "09"
    hour.mkdir(parents=True)
    (hour / "bad.jsonl").write_text(
        'not json\n{"groundTruthData": {"data": "x", "encoding": "XML"}, "eventMetadata": {"eventId": "1"}}\n'
        '{"groundTruthData": {"data": "beagle", "encoding": "CSV"}, "eventMetadata": {"eventId": "nobody"}}\n'
    )
    summary, _, metrics, _ = _run(capture_root, tmp_path / "gt", monitor_case, tmp_path)
    assert summary["labelled_records"] == 100
    assert abs(summary["ground_truth_coverage"] - 100 / 300) < 1e-9
    assert summary["corrupt_ground_truth"] == 2
    assert "encoding 'XML'" in summary["corrupt_ground_truth_examples"][1]
    assert metric_values(metrics, "CorruptGroundTruth") == {None: 2.0}


def test_no_ground_truth_reports_zero_coverage_and_no_accuracy(monitor_case, clean_capture, tmp_path):
    capture_root, _ = clean_capture
    summary, violations, metrics, _ = _run(capture_root, tmp_path / "no-labels-yet", monitor_case, tmp_path)
    assert summary["records_analysed"] == 300 and summary["labelled_records"] == 0
    assert violations == []
    assert metric_values(metrics, "GroundTruthCoverage") == {None: 0.0}
    assert metric_values(metrics, "Accuracy") == {}  # unknown is not zero
    assert metric_values(metrics, "Judged") == {None: 0.0}


def test_too_few_labels_are_reported_but_not_published_as_accuracy(monitor_case, clean_capture, tmp_path):
    """Five labels, all wrong: accuracy 0 in the summary, but the window is not judged, so the
    accuracy alarm (which reads the metric) has nothing to fire on."""
    capture_root, sent = clean_capture
    records = read_records(_record_file(sent[::60], tmp_path / "few.jsonl"))  # several breeds
    write_ground_truth(records, str(tmp_path / "gt"), when=LABELLED_AT, wrong_fraction=1.0)
    summary, violations, metrics, _ = _run(
        capture_root, tmp_path / "gt", monitor_case, tmp_path, "--min-labelled", "10"
    )
    assert summary["labelled_records"] == 5 and not summary["judged"]
    assert summary["metrics"]["accuracy"]["window"] == 0.0
    assert violations == []
    assert metric_values(metrics, "LabelledRecords") == {None: 5.0}
    assert metric_values(metrics, "Judged") == {None: 0.0}
    for name in ("Accuracy", "MacroF1", "Top5Accuracy"):
        assert metric_values(metrics, name) == {}, name


def test_ground_truth_command_rejects_bad_input(tmp_path, capsys):
    from dogbreeds.cli import main

    records = tmp_path / "r.jsonl"
    records.write_text('{"inference_id": "a", "true_label": "beagle", "status": 200}\n')
    assert (
        main(["ground-truth", "--records", str(records), "--out", str(tmp_path), "--wrong-fraction", "1.5"])
        == 2
    )
    assert "--wrong-fraction must be between 0 and 1, got 1.5" in capsys.readouterr().err
    assert (
        main(["ground-truth", "--records", str(records), "--out", str(tmp_path), "--wrong-fraction", "0.5"])
        == 2
    )
    assert "needs at least two distinct labels" in capsys.readouterr().err
    records.write_text("{}\n")
    assert main(["ground-truth", "--records", str(records), "--out", str(tmp_path)]) == 2
    assert "has no inference_id" in capsys.readouterr().err


def test_a_delay_judges_earlier_predictions_with_labels_that_came_late(monitor_case, clean_capture, tmp_path):
    capture_root, sent = clean_capture  # predictions made at 09:xx
    records = read_records(_record_file(sent, tmp_path / "traffic.jsonl"))
    write_ground_truth(records, str(tmp_path / "gt"), when=datetime(2026, 11, 20, 12, 40, tzinfo=UTC))
    late_run = ("--window-end-override", "2026-11-20T13:02:00Z")
    without, _, _, _ = _run(capture_root, tmp_path / "gt", monitor_case, tmp_path / "now", *late_run)
    assert without["records_analysed"] == 0  # the 12:00 window saw no predictions
    summary, violations, metrics, _ = _run(
        capture_root, tmp_path / "gt", monitor_case, tmp_path / "delayed", *late_run,
        "--ground-truth-delay-hours", "3",
    )
    assert summary["window"]["start"] == "2026-11-20T09:00:00Z"
    assert summary["labelled_records"] == 300 and violations == []
    # Metrics carry the run's time, where the alarms look, not the judged window's.
    stamps = {datum["Timestamp"] for request in metrics for datum in request["MetricData"]}
    assert stamps and all(stamp.startswith("2026-11-20T13:00") for stamp in stamps)


def test_reused_ids_are_joined_once_and_long_lines_skipped(monitor_case, clean_capture, tmp_path):
    source, sent = clean_capture
    capture_root = tmp_path / "capture"
    shutil.copytree(source, capture_root)
    hour = next((capture_root / ENDPOINT).glob("AllTraffic/2026/11/20/09"))
    [first_file] = sorted(hour.glob("*.jsonl"))
    lines = first_file.read_text().splitlines(keepends=True)
    (hour / "59-59-999-copy.jsonl").write_text("".join(lines[:25]))
    records = read_records(_record_file(sent, tmp_path / "traffic.jsonl"))
    write_ground_truth(records, str(tmp_path / "gt"), when=LABELLED_AT)
    # A ground-truth line longer than any real one, skipped unread: this job's cap is 20 MiB,
    # so the line is 21 MiB (a 150 MB line is measured in test_monitor_io).
    gt_hour = tmp_path / "gt" / "2026" / "11" / "20" / "09"
    huge = b'{"groundTruthData": {"data": "' + b"a" * (21 << 20) + b'"}}\n'
    (gt_hour / "huge.jsonl").write_bytes(huge)
    summary, violations, _, _ = _run(capture_root, tmp_path / "gt", monitor_case, tmp_path)
    assert summary["records_analysed"] == summary["labelled_records"] == 300
    assert summary["duplicate_records"] == 25
    assert "59-59-999-copy.jsonl:1: id 'req-clean-00000' already seen" in summary["duplicate_examples"][0]
    assert summary["oversized_ground_truth"] == 1
    assert f"huge.jsonl:1: line of {len(huge)} bytes is longer than the 20971520-byte cap" in (
        summary["oversized_ground_truth_examples"][0]
    )
    assert summary["corrupt_ground_truth"] == 0 and violations == []
