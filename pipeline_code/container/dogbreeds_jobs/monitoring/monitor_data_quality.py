"""Data-quality monitor: captured traffic of one window against the live model's baselines.

    python3 monitor_data_quality.py --capture-uri s3://BUCKET/capture/ENDPOINT
        --output-uri s3://BUCKET/monitoring/ENDPOINT/data_quality --window-end 2026-11-27T10:07:00Z
        [--run-id ID] [--window-hours 1] [--window-end-override ''] [--baseline-uri '']
        [--endpoint-name ENDPOINT]
        [--model-package-group GROUP] [--metrics-sink cloudwatch|FILE] [--metrics-namespace dogbreeds/dev]
        [--psi-threshold 0.2] [--ks-threshold 0.2] [--prediction-distance-threshold 0.2]
        [--completeness-tolerance 0.01] [--min-records 30] [--workers 0] [--chunk-records 128]

Streams every capture line of the window (memory stays flat but for 8 bytes per distinct record
id: fixed-size accumulators, a bounded number of objects in flight), measures each image with
``image_features`` and each response's top-1 breed and confidence, and compares them with the
data-quality and prediction baselines. Input it cannot trust is counted in summary.json, with
examples, never raised: corrupt lines, lines longer than any endpoint writes (skipped unread),
records whose inferenceId (else eventId) was already seen in the window (analysed once), and
records of an eventVersion the parser does not know (analysed, and counted per version).
Writes statistics.json, constraint_violations.json, report.html and summary.json under
``<output-uri>/yyyy/mm/dd/hh/<run-id>`` (the window's end; each run its own folder, so a rerun of
an hour keeps the earlier report) and publishes the ``monitoring_metrics`` names.
Exit 0 whenever the analysis ran, violations or not; exit 1 only when it could not run (no
baselines, unusable arguments).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from contract import monitoring_metrics

from . import (
    drift_statistics,
    monitor_baselines,
    monitor_capture,
    monitor_io,
    monitor_metrics_sink,
    monitor_report,
    monitor_window,
)

NAMESPACE_DEFAULT = "dogbreeds/dev"
DRIFT_CHECK = "baseline_drift_check"


def _run_id(text: str) -> str:
    """--run-id: the pipeline's execution id, or a fresh one when empty (a run started by hand)."""
    try:
        return monitor_window.check_run_id(text.strip() or monitor_window.default_run_id())
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments both monitors take (the pipeline passes all of them explicitly)."""
    parser.add_argument("--capture-uri", required=True, help="the endpoint's capture prefix or folder")
    parser.add_argument(
        "--output-uri", required=True, help="reports go under <this>/yyyy/mm/dd/hh/<run id>"
    )
    parser.add_argument(
        "--run-id",
        type=_run_id,
        default="",
        help="names this run's report folder (the pipeline passes its execution id); "
        "default: the UTC start time and a random suffix",
    )
    parser.add_argument("--window-end", required=True, help="ISO time; the window ends on its hour")
    parser.add_argument("--window-end-override", default="", help="used instead of --window-end if set")
    parser.add_argument("--window-hours", type=int, default=1)
    parser.add_argument("--baseline-uri", default="", help="a training run prefix; empty: the live model's")
    parser.add_argument("--endpoint-name", default="")
    parser.add_argument("--model-package-group", default="")
    parser.add_argument(
        "--metrics-sink",
        default=monitor_metrics_sink.CLOUDWATCH,
        help="'cloudwatch' or a JSONL file path / s3:// URI",
    )
    parser.add_argument("--metrics-namespace", default=NAMESPACE_DEFAULT)
    parser.add_argument("--workers", type=int, default=0, help="decode processes; 0: one per CPU")
    parser.add_argument("--chunk-records", type=int, default=128)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--psi-threshold", type=float, default=0.2)
    parser.add_argument("--ks-threshold", type=float, default=0.2)
    parser.add_argument("--prediction-distance-threshold", type=float, default=0.2)
    parser.add_argument(
        "--completeness-tolerance",
        type=float,
        default=0.01,
        help="completeness may fall this far below the baseline's before it is a violation",
    )
    parser.add_argument(
        "--min-records",
        type=int,
        default=30,
        help="fewer images than this: distances are reported but not judged",
    )
    parser.add_argument(
        "--drift-significance",
        type=float,
        default=0.01,
        help="a numeric feature drifts only if its KS distance is this unlikely by chance (p-value)",
    )
    args = parser.parse_args(argv)
    if not 0 < args.drift_significance <= 1:
        parser.error(f"--drift-significance must be in (0, 1], got {args.drift_significance}")
    for name in ("psi_threshold", "ks_threshold", "prediction_distance_threshold"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be above 0, got {getattr(args, name)}")
    if args.workers < 0 or args.chunk_records < 1 or args.min_records < 0:
        parser.error("--workers must be >= 0, --chunk-records >= 1 and --min-records >= 0")
    return args


def analyse_window(
    objects: Iterator[str],
    window: monitor_window.Window,
    workers: int,
    chunk_records: int,
    baselines: tuple[dict, dict],
) -> tuple[dict[str, Any], monitor_capture.ChunkResult]:
    """Fold every capture object of the window into one set of accumulators.

    With several workers each object is analysed in a worker process (it reads the object
    itself and returns compact feature rows), at most 2 x workers objects in flight; the main
    process folds them in listing order, counting a record whose id it has seen before once.
    Memory stays flat with window length except for deduplication's 8 bytes per distinct record
    (``monitor_capture.SeenIds``).
    """
    fold = monitor_capture.WindowFold(*baselines)
    if workers <= 1:
        for location in objects:
            fold.add(*monitor_capture.analyse_object(location, window.start, window.end, chunk_records))
        return fold.accumulators, fold.totals
    pending: list[Future] = []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for location in objects:
            pending.append(
                pool.submit(monitor_capture.analyse_object, location, window.start, window.end, chunk_records)
            )
            if len(pending) >= 2 * workers:
                fold.add(*pending.pop(0).result())
        for future in pending:
            fold.add(*future.result())
    return fold.accumulators, fold.totals


def check_constraints(
    accumulators: dict[str, Any], constraints: list[dict], images: int, args: argparse.Namespace
) -> tuple[list[dict], dict[str, dict]]:
    """Violations and per-feature distances; thresholds come from the arguments and the files."""
    violations: list[dict] = []
    distances: dict[str, dict] = {}
    by_name: dict[str, dict] = {}
    configs: dict[str, dict] = {}
    for document in constraints:
        for feature in document.get("features", []):
            by_name[feature["name"]] = feature
            configs[feature["name"]] = document.get("monitoring_config", {})
    judged = images >= args.min_records
    # Model Monitor writes: "There are missing columns in current dataset. Number of columns in
    # current dataset: 8, Number of columns in baseline constraints: 9" (and "extra" likewise).
    columns = (
        f"Number of columns in current dataset: {len(accumulators)}, "
        f"Number of columns in baseline constraints: {len(by_name)}"
    )
    for name in sorted(set(by_name) - set(accumulators)):
        violations.append(
            monitor_report.violation(
                name,
                "missing_column_check",
                f"There are missing columns in current dataset. {columns}. "
                f"Baseline feature {name} is not measured by this monitor.",
            )
        )
    for name, acc in accumulators.items():
        constraint = by_name.get(name)
        config = configs.get(name, {})
        if constraint is None:
            if images:
                violations.append(
                    monitor_report.violation(
                        name,
                        "extra_column_check",
                        f"There are extra columns in current dataset. {columns}. "
                        f"Feature {name} has no baseline constraint.",
                    )
                )
            continue
        present, total = acc.count, acc.count + acc.missing + acc.type_errors
        if total and "completeness" in constraint:
            completeness = present / total
            if completeness < float(constraint["completeness"]) - args.completeness_tolerance:
                violations.append(
                    monitor_report.violation(
                        name,
                        "completeness_check",
                        (
                            "Data completeness requirement is not met. Expected completeness: "
                            f"{_percent(float(constraint['completeness']))}%. "
                            f"Observed: Only {_percent(completeness)}% of data is complete. "
                            f"({present} of {total} values present; tolerance "
                            f"{args.completeness_tolerance})"
                        ),
                    )
                )
        type_threshold = float(config.get("datatype_check_threshold", 0.1))
        if total and acc.type_errors / total > type_threshold:
            # Model Monitor writes: "Data type match requirement is not met. Expected data type:
            # Integral, Expected match: 100.0%. Observed: Only 0.0% of data is Integral."
            # Our threshold is the share of mismatches allowed, so the match expected is 1 - it.
            matched = (total - acc.type_errors) / total
            violations.append(
                monitor_report.violation(
                    name,
                    "data_type_check",
                    (
                        "Data type match requirement is not met. Expected data type: "
                        f"{acc.inferred_type}, Expected match: {_percent(1 - type_threshold)}%. "
                        f"Observed: Only {_percent(matched)}% of data is {acc.inferred_type}. "
                        f"({acc.type_errors} of {total} values are not {acc.inferred_type})"
                    ),
                )
            )
        non_negative = (constraint.get("num_constraints") or {}).get("is_non_negative")
        if isinstance(acc, drift_statistics.NumericAccumulator) and non_negative and acc.negative:
            violations.append(
                monitor_report.violation(
                    name,
                    "data_type_check",
                    f"{acc.negative} of {acc.count} values are negative; the baseline's are all non-negative",
                )
            )
        if isinstance(acc, drift_statistics.NumericAccumulator):
            psi, ks, p_value = acc.psi(), acc.ks(), acc.ks_p_value()
            distances[name] = {"psi": psi, "ks": ks, "ks_p_value": p_value}
            beyond_threshold = psi is not None and (psi > args.psi_threshold or ks > args.ks_threshold)
            # A distance over the threshold that sampling noise explains (small baseline or window)
            # is reported in the distances but is not a violation.
            beyond_chance = p_value is not None and p_value < args.drift_significance
            if judged and beyond_threshold and beyond_chance:
                # Model Monitor writes: "Baseline drift distance: <d> exceeds threshold: <t>". The
                # distance named first is the one over its threshold (KS when both are).
                over_ks = ks > args.ks_threshold
                distance, limit = (ks, args.ks_threshold) if over_ks else (psi, args.psi_threshold)
                violations.append(
                    monitor_report.violation(
                        name,
                        DRIFT_CHECK,
                        (
                            f"Baseline drift distance: {distance} exceeds threshold: {limit}. "
                            f"({'KS' if over_ks else 'PSI'} distance; KS {ks:.4f} "
                            f"(threshold {args.ks_threshold}, p-value {p_value:.2g}), "
                            f"PSI {psi:.4f} (threshold {args.psi_threshold}), "
                            f"over {acc.count} images)"
                        ),
                    )
                )
        else:
            distance = acc.distance()
            distances[name] = {"l_infinity": distance}
            domain = (constraint.get("string_constraints") or {}).get("domains")
            if domain and acc.count:
                outside = acc.outside_domain(domain)
                share = outside / acc.count
                domain_threshold = float(config.get("domain_content_threshold", 0.1))
                if share > domain_threshold:
                    violations.append(
                        monitor_report.violation(
                            name,
                            "categorical_values_check",
                            (
                                "Categorical value match requirement is not met. Expected match: "
                                f"{_percent(1 - domain_threshold)}%. Observed: Only "
                                f"{_percent(1 - share)}% of data is within the baseline domain. "
                                f"({outside} of {acc.count} values of {name} are outside it)"
                            ),
                        )
                    )
            # One L-infinity threshold for every categorical feature (predicted breed, format, mode).
            limit = args.prediction_distance_threshold
            if judged and distance is not None and distance > limit:
                violations.append(
                    monitor_report.violation(
                        name,
                        DRIFT_CHECK,
                        (
                            f"Baseline drift distance: {distance} exceeds threshold: {limit}. "
                            f"(L-infinity distance of the value shares over {acc.count} values)"
                        ),
                    )
                )
    return violations, distances


def _percent(share: float) -> str:
    """A share as Model Monitor prints a percentage (``100.0``, ``99.71751412429379``), without
    float noise such as ``90.00000000000001``."""
    return str(round(share * 100, 10))


def run(args: argparse.Namespace) -> dict[str, Any]:
    window = monitor_window.monitoring_window(
        args.window_end, args.window_hours, end_override=args.window_end_override
    )
    baselines = monitor_baselines.choose(args.baseline_uri, args.endpoint_name, args.model_package_group)
    data_stats = monitor_baselines.load_json(baselines.data_statistics, "data-quality statistics")
    data_constraints = monitor_baselines.load_json(baselines.data_constraints, "data-quality constraints")
    prediction_stats = monitor_baselines.load_json(baselines.prediction_statistics, "prediction statistics")
    prediction_constraints = monitor_baselines.load_json(
        baselines.prediction_constraints, "prediction constraints"
    )
    workers = args.workers or os.cpu_count() or 1
    objects = monitor_window.iter_capture_objects(args.capture_uri, window)
    accumulators, totals = analyse_window(
        objects, window, workers, args.chunk_records, (data_stats, prediction_stats)
    )
    violations, distances = check_constraints(
        accumulators, [data_constraints, prediction_constraints], totals.images, args
    )
    statistics = {
        "version": 0.0,
        "dataset": {"item_count": totals.images, "record_count": totals.records},
        "features": [acc.statistics() for acc in accumulators.values()],
    }
    numeric_psi = [d["psi"] for d in distances.values() if d.get("psi") is not None]
    drifted = sorted(
        {v["feature_name"] for v in violations if v["constraint_check_type"] == DRIFT_CHECK}
    )
    summary = {
        "monitor": monitoring_metrics.MONITOR_DATA_QUALITY,
        "endpoint": args.endpoint_name,
        "window": window.describe(),
        "baselines": baselines.describe(),
        "records_analysed": totals.records,
        "images_analysed": totals.images,
        "corrupt_records": totals.corrupt,
        "corrupt_examples": totals.errors,
        "duplicate_records": totals.duplicates,
        "duplicate_examples": totals.duplicate_examples,
        "oversized_records": totals.oversized,
        "oversized_examples": totals.oversized_examples,
        "unknown_event_versions": dict(sorted(totals.unknown_versions.items())),
        "unknown_event_version_examples": totals.unknown_version_examples,
        "undecodable": dict(sorted(totals.decode_failures.items())),
        "records_outside_window": totals.outside_window,
        "judged": totals.images >= args.min_records,
        "thresholds": {
            "psi": args.psi_threshold,
            "ks": args.ks_threshold,
            "prediction_distance": args.prediction_distance_threshold,
        },
        "distances": distances,
        "max_feature_psi": max(numeric_psi, default=0.0),
        # The verdict the alarms read: features judged drifted (the predicted breed has its own).
        "drifted_features": [name for name in drifted if name != monitoring_metrics.PREDICTION_FEATURE],
        "prediction_drifted": monitoring_metrics.PREDICTION_FEATURE in drifted,
        "violation_count": len(violations),
    }
    flagged = set(drifted)
    sections = monitor_report.distribution_sections(
        {name: acc.histogram() for name, acc in accumulators.items()},
        distances,
        flagged,
        {
            "psi": args.psi_threshold,
            "ks": args.ks_threshold,
            "l_infinity": args.prediction_distance_threshold,
        },
    )
    summary["report_files"] = monitor_report.write_run_reports(
        monitor_title="Data quality",
        subject=args.endpoint_name or args.capture_uri,
        output_uri=args.output_uri,
        window=window,
        run_id=args.run_id,
        summary=summary,
        headline_keys=(
            "records_analysed", "images_analysed", "corrupt_records", "undecodable",
            "max_feature_psi", "violation_count",
        ),
        statistics=statistics,
        violations=violations,
        sections=sections,
        verdict=_verdict(totals.images, args.min_records),
    )
    publish_metrics(args, window, summary)
    return summary


def _verdict(images: int, min_records: int) -> tuple[bool, str]:
    """Whether drift was judged, in the words the report shows."""
    if images >= min_records:
        return True, (
            f"{images:,} images in the window (at least {min_records} needed); distances beyond "
            "their thresholds are violations"
        )
    return False, (
        f"only {images:,} images in the window, fewer than the {min_records} needed; "
        "distances are shown but raise no drift violation"
    )


def publish_metrics(args: argparse.Namespace, window: monitor_window.Window, summary: dict) -> None:
    publisher = monitor_metrics_sink.MetricsPublisher(
        args.metrics_sink,
        args.metrics_namespace,
        args.endpoint_name or "unknown",
        monitoring_metrics.MONITOR_DATA_QUALITY,
        window.end,
    )
    """Counts always; distances and the drift verdict only for a judged window (an alarm must not
    read a window the monitor declined to judge as drift)."""
    count = monitor_metrics_sink.COUNT
    publisher.add(monitoring_metrics.RECORDS_ANALYSED, summary["records_analysed"], count)
    publisher.add(monitoring_metrics.IMAGES_ANALYSED, summary["images_analysed"], count)
    publisher.add(monitoring_metrics.CORRUPT_RECORDS, summary["corrupt_records"], count)
    publisher.add(monitoring_metrics.VIOLATIONS, summary["violation_count"], count)
    publisher.add(monitoring_metrics.JUDGED, 1.0 if summary["judged"] else 0.0)
    if summary["judged"]:
        publisher.add(monitoring_metrics.DRIFTED_FEATURES, len(summary["drifted_features"]), count)
        for name, distance in summary["distances"].items():
            if name == monitoring_metrics.PREDICTION_FEATURE and distance.get("l_infinity") is not None:
                publisher.add(monitoring_metrics.PREDICTION_DISTANCE, distance["l_infinity"])
            if distance.get("psi") is not None:
                publisher.add(monitoring_metrics.FEATURE_PSI, distance["psi"], feature=name)
            if distance.get("ks") is not None:
                publisher.add(monitoring_metrics.FEATURE_KS, distance["ks"], feature=name)
    publisher.publish()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        summary = run(args)
    except (monitor_baselines.BaselineResolutionError, monitor_io.MonitorDataError, ValueError) as error:
        print(f"monitor_data_quality: {error}", file=sys.stderr)
        return 1
    print(
        f"records_analysed={summary['records_analysed']} images_analysed={summary['images_analysed']} "
        f"corrupt_records={summary['corrupt_records']} duplicate_records={summary['duplicate_records']} "
        f"oversized_records={summary['oversized_records']} "
        f"unknown_event_versions={sum(summary['unknown_event_versions'].values())} "
        f"violations={summary['violation_count']} "
        f"judged={summary['judged']} drifted={','.join(summary['drifted_features']) or 'none'} "
        f"prediction_drifted={summary['prediction_drifted']}"
    )
    for location in summary["report_files"]:
        print(f"wrote {location}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
