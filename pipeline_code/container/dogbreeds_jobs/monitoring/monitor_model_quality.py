"""Model-quality monitor: captured predictions joined with ground truth, against the baseline.

    python3 monitor_model_quality.py --capture-uri s3://BUCKET/capture/ENDPOINT
        --ground-truth-uri s3://BUCKET/ground-truth/ENDPOINT
        --output-uri s3://BUCKET/monitoring/ENDPOINT/model_quality --window-end 2026-11-27T10:07:00Z
        [--run-id ID] [--window-hours 1] [--ground-truth-extra-hours 1] [--accuracy-threshold 0.7]
        [--quality-tolerance 0.05] [--min-labelled 10] [common arguments of monitor_data_quality.py]

Reads the window's ground truth (``yyyy/mm/dd/hh/*.jsonl`` for the window's hours plus
``--ground-truth-extra-hours`` after it, because labels arrive after the predictions they label)
into an id -> label map, then streams the window's capture records and joins each on its
inferenceId (else eventId), as Model Monitor's merge does. Computes accuracy, top-k accuracy,
macro and weighted precision/recall/F1, per-class recall and the confusion matrix with the same
code as the evaluation step, checks them against the model-quality constraints
(``LessThanThreshold`` at the baseline value, minus ``--quality-tolerance``) and against
``--accuracy-threshold`` (the environment's setting), and reports ground-truth coverage. The
reports go under ``<output-uri>/yyyy/mm/dd/hh/<run-id>`` of the judged window's end.
"""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from typing import Any

from contract import monitoring_metrics

from . import (
    ground_truth_format,
    model_monitor_files,
    model_quality_report,
    monitor_baselines,
    monitor_capture,
    monitor_data_quality,
    monitor_io,
    monitor_metrics_sink,
    monitor_report,
    monitor_window,
)

TOP_K = 5
MAX_ERROR_SAMPLES = 20
# Baseline metrics compared in the report and metrics published (name in statistics.json).
REPORTED_METRICS = ("accuracy", "macro_f1", "weighted_f1", "weighted_precision", "weighted_recall")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    monitor_data_quality.add_common_arguments(parser)
    parser.add_argument("--ground-truth-uri", required=True)
    parser.add_argument("--ground-truth-extra-hours", type=int, default=1)
    parser.add_argument(
        "--ground-truth-delay-hours",
        type=int,
        default=0,
        help="judge the predictions of the window this many hours earlier, so labels that arrive "
        "late are counted (Model Monitor's start/end offsets)",
    )
    parser.add_argument("--accuracy-threshold", type=float, default=0.7)
    parser.add_argument("--quality-tolerance", type=float, default=0.05)
    parser.add_argument("--min-labelled", type=int, default=10)
    args = parser.parse_args(argv)
    if not 0 < args.accuracy_threshold <= 1:
        parser.error(f"--accuracy-threshold must be in (0, 1], got {args.accuracy_threshold}")
    if args.ground_truth_delay_hours < 0:
        parser.error(f"--ground-truth-delay-hours must be >= 0, got {args.ground_truth_delay_hours}")
    if args.ground_truth_extra_hours < 0 or args.min_labelled < 1 or args.quality_tolerance < 0:
        parser.error("--ground-truth-extra-hours and --quality-tolerance must be >= 0, --min-labelled >= 1")
    return args


def load_ground_truth(
    root: str,
    window: monitor_window.Window,
    extra_hours: int,
    counts: monitor_capture.ChunkResult | None = None,
) -> tuple[dict, int, list]:
    """id -> label for every ground-truth record in the window's hours (and the extra ones).

    A line longer than ``monitor_io.MAX_LINE_BYTES`` is skipped unread and counted in ``counts``
    (``oversized``, with an example)."""
    span = monitor_window.Window(window.start, window.end + timedelta(hours=extra_hours))
    labels: dict[str, str] = {}
    corrupt, errors = 0, []
    counts = counts if counts is not None else monitor_capture.ChunkResult()
    for location in monitor_window.iter_hour_objects(root, span):
        for number, line in enumerate(monitor_io.iter_lines(location), start=1):
            if isinstance(line, monitor_io.OversizedLine):
                counts.oversized += 1
                monitor_capture.keep_example(counts.oversized_examples, line.describe(location, number))
                continue
            if not line.strip():
                continue
            try:
                record = ground_truth_format.parse_ground_truth(line, source=location, line_number=number)
            except ground_truth_format.GroundTruthFormatError as error:
                corrupt += 1
                if len(errors) < MAX_ERROR_SAMPLES:
                    errors.append(str(error)[:300])
                continue
            labels[record.event_id] = record.label  # a later correction wins
    return labels, corrupt, errors


class Joined:
    """Labelled predictions of the window, and counts of what could not be joined.

    ``counts`` holds what was skipped or flagged while reading capture: corrupt, oversized and
    duplicate records, and records of an unknown eventVersion (joined all the same)."""

    def __init__(self) -> None:
        self.records = 0
        self.counts = monitor_capture.ChunkResult()
        self.unreadable_output = 0
        self.true: list[str] = []
        self.predicted: list[str] = []
        self.in_top_k: list[bool] = []
        self.top_k = 0

    @property
    def corrupt(self) -> int:
        return self.counts.corrupt

    @property
    def errors(self) -> list[str]:
        return self.counts.errors


def join_window(capture_uri: str, window: monitor_window.Window, labels: dict[str, str]) -> Joined:
    """Join each capture record of the window with its label; a record whose id was already seen
    in the window (a repeated inferenceId, or the same line captured twice) is joined once."""
    joined = Joined()
    seen = monitor_capture.SeenIds()
    for location in monitor_window.iter_capture_objects(capture_uri, window):
        for number, line in enumerate(monitor_io.iter_lines(location), start=1):
            if isinstance(line, bytes) and not line.strip():
                continue
            record = monitor_capture.read_record(location, number, line, joined.counts)
            if record is None or not window.contains(record.inference_time):
                continue
            monitor_capture.note_version(record, location, number, joined.counts)
            if not seen.first_seen([monitor_capture.id_digest(record.join_id)])[0]:
                joined.counts.duplicates += 1
                monitor_capture.keep_example(
                    joined.counts.duplicate_examples,
                    f"{location}:{number}: id {record.join_id!r} already seen in this window; joined once",
                )
                continue
            joined.records += 1
            label = labels.get(record.join_id)
            if label is None:
                continue
            try:
                predictions = record.endpoint_output.json()["predictions"] if record.endpoint_output else None
                prediction = (
                    predictions[0] if isinstance(predictions, list) and len(predictions) == 1 else None
                )
                breed = prediction["breed"]
                top = [entry["breed"] for entry in prediction.get("top_k", [])] or [breed]
            except (ValueError, KeyError, TypeError, IndexError):
                prediction = None
            if prediction is None or not isinstance(breed, str):
                # A batch request has one inference id for several images: no per-image label.
                joined.unreadable_output += 1
                continue
            joined.top_k = max(joined.top_k, min(TOP_K, len(top)))
            joined.true.append(label)
            joined.predicted.append(breed)
            joined.in_top_k.append(label in top[:TOP_K])
    return joined


def check_constraints(metrics: dict, constraints: dict, args: argparse.Namespace) -> list[dict]:
    violations = []
    for name, rule in sorted((constraints.get("multiclass_classification_constraints") or {}).items()):
        if name not in metrics:
            continue
        value = float(metrics[name]["value"])
        threshold = float(rule["threshold"])
        operator = rule.get("comparison_operator", "LessThanThreshold")
        broken = (operator == "LessThanThreshold" and value < threshold - args.quality_tolerance) or (
            operator == "GreaterThanThreshold" and value > threshold + args.quality_tolerance
        )
        if broken:
            # Model Monitor writes: "Metric <name> with <value> was <operator> <threshold>". The
            # threshold named is the one compared with: the baseline's, moved by the tolerance.
            moved = (
                threshold - args.quality_tolerance
                if operator == "LessThanThreshold"
                else (threshold + args.quality_tolerance)
            )
            violations.append(
                monitor_report.metric_violation(
                    name,
                    operator,
                    f"Metric {name} with {value} was {operator} {round(moved, 10)}. "
                    f"(baseline {threshold}, tolerance {args.quality_tolerance})",
                )
            )
    accuracy = float(metrics["accuracy"]["value"])
    if accuracy < args.accuracy_threshold:
        violations.append(
            monitor_report.metric_violation(
                "accuracy",
                "LessThanThreshold",
                f"Metric accuracy with {accuracy} was LessThanThreshold {args.accuracy_threshold}. "
                "(the environment's accuracy threshold)",
            )
        )
    return violations


def run(args: argparse.Namespace) -> dict[str, Any]:
    scheduled = monitor_window.monitoring_window(
        args.window_end, args.window_hours, end_override=args.window_end_override
    )
    delay = timedelta(hours=args.ground_truth_delay_hours)
    # Predictions of an earlier window, labels up to now: each prediction is judged once, after
    # its labels had time to arrive.
    window = monitor_window.Window(scheduled.start - delay, scheduled.end - delay)
    baselines = monitor_baselines.choose(args.baseline_uri, args.endpoint_name, args.model_package_group)
    baseline_stats = monitor_baselines.load_json(baselines.model_statistics, "model-quality statistics")
    constraints = monitor_baselines.load_json(baselines.model_constraints, "model-quality constraints")
    gt_counts = monitor_capture.ChunkResult()
    labels, gt_corrupt, gt_errors = load_ground_truth(
        args.ground_truth_uri,
        window,
        args.ground_truth_extra_hours + args.ground_truth_delay_hours,
        gt_counts,
    )
    joined = join_window(args.capture_uri, window, labels)
    labelled = len(joined.true)
    coverage = labelled / joined.records if joined.records else 0.0
    judged = labelled >= args.min_labelled
    statistics: dict[str, Any] = {"version": 0.0, "dataset": {"item_count": labelled}}
    violations: list[dict] = []
    metrics: dict[str, Any] = {}
    per_class: dict[str, Any] = {}
    if labelled:
        top_name = f"top_{joined.top_k}_accuracy"
        metrics = model_monitor_files.multiclass_metrics(
            joined.true, joined.predicted, extra={top_name: joined.in_top_k}
        )
        classes = sorted(set(joined.true) | set(joined.predicted))
        per_class = model_monitor_files.per_class_metrics(joined.true, joined.predicted, classes)
        statistics = model_monitor_files.model_quality_statistics(metrics, labelled)
        statistics["per_class_metrics"] = per_class
        if judged:
            violations = check_constraints(metrics, constraints, args)
    baseline_metrics = baseline_stats.get("multiclass_classification_metrics", {})
    comparison = {
        name: {
            "baseline": baseline_metrics.get(name, {}).get("value"),
            "window": metrics.get(name, {}).get("value"),
        }
        for name in REPORTED_METRICS
    }
    summary = {
        "monitor": monitoring_metrics.MONITOR_MODEL_QUALITY,
        "endpoint": args.endpoint_name,
        "window": window.describe(),
        "baselines": baselines.describe(),
        "records_analysed": joined.records,
        "labelled_records": labelled,
        "ground_truth_records": len(labels),
        "ground_truth_coverage": coverage,
        "corrupt_records": joined.corrupt,
        "corrupt_examples": joined.errors,
        "duplicate_records": joined.counts.duplicates,
        "duplicate_examples": joined.counts.duplicate_examples,
        "oversized_records": joined.counts.oversized,
        "oversized_examples": joined.counts.oversized_examples,
        "unknown_event_versions": dict(sorted(joined.counts.unknown_versions.items())),
        "unknown_event_version_examples": joined.counts.unknown_version_examples,
        "oversized_ground_truth": gt_counts.oversized,
        "oversized_ground_truth_examples": gt_counts.oversized_examples,
        "corrupt_ground_truth": gt_corrupt,
        "corrupt_ground_truth_examples": gt_errors,
        "unjoinable_outputs": joined.unreadable_output,
        "judged": judged,
        "metrics": comparison,
        "top_k_accuracy": metrics.get(f"top_{joined.top_k}_accuracy", {}).get("value"),
        "per_class_recall": {name: values["recall"] for name, values in per_class.items()},
        "violation_count": len(violations),
    }
    sections = model_quality_report.sections(
        window_metrics=metrics,
        top_name=f"top_{joined.top_k}_accuracy",
        per_class=per_class,
        baseline_statistics=baseline_stats,
        constraints=constraints,
        accuracy_threshold=args.accuracy_threshold,
        tolerance=args.quality_tolerance,
    )
    summary["report_files"] = monitor_report.write_run_reports(
        monitor_title="Model quality",
        subject=args.endpoint_name or args.capture_uri,
        output_uri=args.output_uri,
        window=window,
        run_id=args.run_id,
        summary=summary,
        headline_keys=("records_analysed", "labelled_records", "ground_truth_coverage", "violation_count"),
        statistics=statistics,
        violations=violations,
        sections=sections,
        verdict=_verdict(labelled, args.min_labelled),
    )
    # Timestamped at the run, not the judged window: the alarms look at the latest period.
    publish_metrics(args, scheduled, summary)
    return summary


def _verdict(labelled: int, min_labelled: int) -> tuple[bool, str]:
    """Whether quality was judged, in the words the report shows."""
    if labelled >= min_labelled:
        return True, (
            f"{labelled:,} labelled records (at least {min_labelled} needed); metrics below their "
            "thresholds are violations"
        )
    return False, (
        f"only {labelled:,} labelled records, fewer than the {min_labelled} needed; the metrics "
        "are shown but raise no violation"
    )


def publish_metrics(args: argparse.Namespace, window: monitor_window.Window, summary: dict) -> None:
    publisher = monitor_metrics_sink.MetricsPublisher(
        args.metrics_sink,
        args.metrics_namespace,
        args.endpoint_name or "unknown",
        monitoring_metrics.MONITOR_MODEL_QUALITY,
        window.end,
    )
    """Counts and coverage always; quality values only for a judged window (enough labels), so the
    accuracy alarm never fires on a handful of labelled records the monitor declined to judge."""
    count = monitor_metrics_sink.COUNT
    publisher.add(monitoring_metrics.RECORDS_ANALYSED, summary["records_analysed"], count)
    publisher.add(monitoring_metrics.CORRUPT_RECORDS, summary["corrupt_records"], count)
    publisher.add(monitoring_metrics.CORRUPT_GROUND_TRUTH, summary["corrupt_ground_truth"], count)
    publisher.add(monitoring_metrics.LABELLED_RECORDS, summary["labelled_records"], count)
    publisher.add(monitoring_metrics.VIOLATIONS, summary["violation_count"], count)
    publisher.add(monitoring_metrics.JUDGED, 1.0 if summary["judged"] else 0.0)
    if summary["records_analysed"]:
        publisher.add(monitoring_metrics.GROUND_TRUTH_COVERAGE, summary["ground_truth_coverage"])
    if summary["judged"]:
        publisher.add(monitoring_metrics.ACCURACY, summary["metrics"]["accuracy"]["window"])
        publisher.add(monitoring_metrics.MACRO_F1, summary["metrics"]["macro_f1"]["window"])
        publisher.add(monitoring_metrics.TOP5_ACCURACY, summary["top_k_accuracy"])
    publisher.publish()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        summary = run(args)
    except (monitor_baselines.BaselineResolutionError, monitor_io.MonitorDataError, ValueError) as error:
        print(f"monitor_model_quality: {error}", file=sys.stderr)
        return 1
    accuracy = summary["metrics"]["accuracy"]["window"]
    print(
        f"records_analysed={summary['records_analysed']} labelled_records={summary['labelled_records']} "
        f"coverage={summary['ground_truth_coverage']:.4f} accuracy={accuracy} "
        f"duplicate_records={summary['duplicate_records']} oversized_records={summary['oversized_records']} "
        f"oversized_ground_truth={summary['oversized_ground_truth']} "
        f"unknown_event_versions={sum(summary['unknown_event_versions'].values())} "
        f"judged={summary['judged']} violations={summary['violation_count']}"
    )
    for location in summary["report_files"]:
        print(f"wrote {location}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
