"""`dogbreeds local monitor`: run the monitoring pipeline on this machine over local traffic.

    dogbreeds local monitor [--env dev] [--assembly cdk.out] [--workdir .local]
        [--endpoint-name NAME] [--capture-dir DIR] [--ground-truth-dir DIR] [--baseline-uri URI]
        [--window-hours N] [--window-end ISO]

Runs the monitoring definition of the environment's synthesised cloud assembly (the one `cdk
deploy` ships, see dogbreeds/cloud_assembly.py) through the local executor. Its parameters'
defaults name the endpoint, the capture and ground-truth prefixes and where reports go, in the
local S3 folder; `dogbreeds local serve --capture-dir` and `dogbreeds ground-truth --out` write
there (the demo shows how). The baselines are the newest Approved package's in the local model
registry (``--baseline-uri`` overrides). Metrics go to ``<workdir>/monitoring/metrics.jsonl`` in
PutMetricData's request shape instead of CloudWatch. By default the window ends at the next full
hour, so traffic sent a minute ago is included.

Then the alarms of the synthesised stacks are evaluated on those metrics as CloudWatch would
(``dogbreeds/local_alarms.py``), and each state change goes through the synthesised EventBridge
rules to the retrain guard's deployed code, which says whether it would start a training run
(``dogbreeds/local_alarm_actions.py``). It prints a short summary and writes it, with every
detail, to ``<workdir>/monitoring/last_run.json``. Exit 0 when the monitors ran, 1 when the
pipeline failed, 2 on bad arguments, 3 with ``--fail-on-violations`` when a monitor reported
violations or an alarm is in ALARM.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dogbreeds.cloud_assembly import CloudAssembly
from dogbreeds.local_alarm_actions import alarm_definitions, format_outcomes, route_changes
from dogbreeds.local_alarms import (
    ALARM,
    AlarmDefinition,
    AlarmStates,
    evaluate_all,
    format_states,
    read_metrics_sink,
)
from dogbreeds.local_run import DEFAULT_ENV, load_assembly

BASELINE_FILE = "live_baselines.json"
# What the run found, for scripts and the demo: summaries, alarm states, what the changes set off.
LAST_RUN_FILE = "last_run.json"
EXIT_VIOLATIONS = 3
DATA_QUALITY, MODEL_QUALITY = "data_quality", "model_quality"
MONITORS = (DATA_QUALITY, MODEL_QUALITY)
# The report files each monitor run writes (dogbreeds_jobs/monitoring/monitor_report.py).
SUMMARY_FILE, VIOLATIONS_FILE, REPORT_FILE = "summary.json", "constraint_violations.json", "report.html"


def live_baselines_file(workdir: Path, group: str | None = None) -> Path:
    """Write the newest Approved local package's DriftCheckBaselines where the job can read it."""
    from dogbreeds.local_registry import LocalModelRegistry

    registry = LocalModelRegistry(workdir)
    groups = [group] if group else registry.groups()
    approved = [p for g in groups if (p := registry.latest(g, status="Approved"))]
    if not approved:
        raise ValueError(
            f"no Approved model package in the local registry under {workdir}: approve one with "
            "`dogbreeds local models approve`, or pass --baseline-uri"
        )
    package = max(approved, key=lambda p: p["created_at"])
    path = workdir / "monitoring" / BASELINE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    # The fields of DescribeModelPackage the monitors read on AWS.
    document = {
        "ModelPackageArn": package["arn"],
        "DriftCheckBaselines": package["drift_check_baselines"],
        "CustomerMetadataProperties": package.get("customer_metadata_properties", {}),
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def next_hour(moment: datetime) -> str:
    return (moment.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


@dataclass(frozen=True)
class MonitorOptions:
    """What `local monitor` was asked: the command line's choices, typed."""

    workdir: Path
    env_name: str = DEFAULT_ENV
    assembly_dir: Path | None = None
    endpoint_name: str = ""  # empty: the environment's endpoint
    capture_dir: Path | None = None
    ground_truth_dir: Path | None = None
    baseline_uri: str = ""  # empty: the newest Approved package's baselines
    window_hours: int = 1
    window_end: str = ""  # empty: the next full hour


def monitor_parameters(
    options: MonitorOptions, workdir: Path, baseline: str, defaults: dict[str, Any]
) -> dict[str, Any]:
    """The run's parameters: the definition's defaults, with local-only choices on top."""
    parameters: dict[str, Any] = {
        "BaselineS3Uri": baseline,
        "WindowHours": options.window_hours,
        "WindowEnd": options.window_end or next_hour(datetime.now(UTC)),
        # No CloudWatch here: the jobs append PutMetricData requests to this file instead.
        "MetricsSink": str((workdir / "monitoring" / "metrics.jsonl").resolve()),
    }
    endpoint = options.endpoint_name or defaults["EndpointName"]
    if endpoint != defaults["EndpointName"]:
        # Keep the deployed layout (<prefix>/<endpoint>) for another endpoint's traffic.
        default_endpoint = defaults["EndpointName"]
        parameters["EndpointName"] = endpoint
        for name in ("CaptureS3Uri", "GroundTruthS3Uri", "MonitoringS3Uri"):
            parameters[name] = defaults[name].removesuffix(default_endpoint) + endpoint
    if options.capture_dir:
        parameters["CaptureS3Uri"] = str((options.capture_dir / endpoint).resolve())
    if options.ground_truth_dir:
        parameters["GroundTruthS3Uri"] = str(options.ground_truth_dir.resolve())
    return parameters


def _newest_summary(folder: Path, execution_id: str | None = None) -> Path | None:
    """The run's summary.json: each execution writes <monitor>/yyyy/mm/dd/hh/<execution id>/, so
    with an id it is that folder's (runs for the same hour sit side by side), else the newest."""
    pattern = f"*/*/*/*/{execution_id}/{SUMMARY_FILE}" if execution_id else f"**/{SUMMARY_FILE}"
    summaries = sorted(folder.glob(pattern), key=lambda path: path.stat().st_mtime)
    return summaries[-1] if summaries else None


def run_summaries(reports_root: Path, execution_id: str | None = None) -> dict[str, dict[str, Any]]:
    """Each monitor's summary.json of the execution (the newest without one), with the violations
    and report beside it."""
    found: dict[str, dict[str, Any]] = {}
    for monitor in MONITORS:
        path = _newest_summary(reports_root / monitor, execution_id)
        if path is None:
            continue
        violations = json.loads((path.parent / VIOLATIONS_FILE).read_text()).get("violations", [])
        found[monitor] = {
            "summary": json.loads(path.read_text()),
            "violations": violations,
            "report": str(path.parent / REPORT_FILE),
        }
    return found


def _violations_by_feature(violations: list[dict[str, Any]]) -> str:
    counts: dict[str, list[str]] = {}
    for violation in violations:
        name = violation.get("feature_name") or violation.get("metric_name") or "?"
        counts.setdefault(name, []).append(violation.get("constraint_check_type", "?"))
    return ", ".join(f"{name} ({', '.join(sorted(set(checks)))})" for name, checks in sorted(counts.items()))


def format_summary(result: dict[str, Any]) -> str:
    """A few lines a person reads after a local monitoring run."""
    lines = [f"monitoring execution {result['execution_id']}: {result['status']}"]
    if result.get("failure_reason"):
        lines.append(f"  failed at {result['failed_step']}: {result['failure_reason']}")
    runs = result.get("monitors", {})
    data = runs.get(DATA_QUALITY)
    if data:
        summary = data["summary"]
        window = summary["window"]
        judged = "judged" if summary["judged"] else "NOT judged (too few images)"
        lines.append(
            f"data quality  {window['start']} - {window['end']}: {summary['records_analysed']} records, "
            f"{summary['images_analysed']} images, {summary['corrupt_records']} corrupt; {judged}"
        )
        lines.append(
            f"  violations: {len(data['violations'])}"
            + (f": {_violations_by_feature(data['violations'])}" if data["violations"] else "")
        )
    quality = runs.get(MODEL_QUALITY)
    if quality:
        summary = quality["summary"]
        judged = "judged" if summary["judged"] else "NOT judged (too few labels)"
        accuracy = summary.get("metrics", {}).get("accuracy") or {}
        window_value, baseline = accuracy.get("window"), accuracy.get("baseline")
        shown = "n/a" if window_value is None else f"{window_value:.3f}"
        lines.append(
            f"model quality: {summary['records_analysed']} records, {summary['labelled_records']} labelled "
            f"(coverage {summary['ground_truth_coverage']:.2f}); {judged}"
        )
        lines.append(
            f"  accuracy {shown} (threshold {result.get('accuracy_threshold')}, baseline "
            f"{'n/a' if baseline is None else f'{baseline:.3f}'}); violations: {len(quality['violations'])}"
            + (f": {_violations_by_feature(quality['violations'])}" if quality["violations"] else "")
        )
    alarms = result.get("alarms")
    if alarms is not None:
        lines.append(f"alarms, evaluated as CloudWatch would at {result['alarms_evaluated_at']}:")
        lines.append(alarms)
        if result.get("alarms_without_data"):
            lines.append(
                f"  ({len(result['alarms_without_data'])} without data: their metrics, such as the "
                "endpoint's and the Lambdas', come from AWS and are not produced locally)"
            )
        lines.append("state changes:" if result.get("changes") else "state changes: none")
        if result.get("changes"):
            lines.append(result["changes"])
    lines.append("reports:")
    lines.extend(f"  {data['report']}" for data in runs.values())
    lines.append(f"metrics: {result['metrics']}")
    return "\n".join(lines)


@dataclass
class MonitoringSetup:
    """What a run needs, found before anything runs: baselines, the definition, the alarms."""

    workdir: Path
    baseline: str
    assembly: CloudAssembly
    pipeline_name: str
    definition: dict[str, Any]
    alarms: list[AlarmDefinition]


def prepare_monitoring(options: MonitorOptions) -> MonitoringSetup:
    """Find the baselines and load the definition and alarms; ValueError or AssemblyError if not."""
    workdir = options.workdir.resolve()
    baseline = options.baseline_uri or str(live_baselines_file(workdir))
    assembly = load_assembly(workdir, options.env_name, options.assembly_dir)
    pipeline_name, definition = assembly.monitoring_pipeline()
    alarms = alarm_definitions(assembly)
    return MonitoringSetup(workdir, baseline, assembly, pipeline_name, definition, alarms)


def run_monitoring(setup: MonitoringSetup, options: MonitorOptions) -> tuple[dict[str, Any], bool]:
    """Run the monitoring definition, then evaluate the alarms and route their changes.

    Returns the outcome (also written to ``<workdir>/monitoring/last_run.json``) and whether the
    pipeline succeeded; AlarmEvaluationError when the alarms cannot be evaluated.
    """
    from dogbreeds.local_executor import local_s3_root, run_pipeline
    from dogbreeds.local_executor.s3_mapping import LocalS3

    workdir, definition = setup.workdir, setup.definition
    defaults = {p["Name"]: p.get("DefaultValue") for p in definition["Parameters"]}
    parameters = monitor_parameters(options, workdir, setup.baseline, defaults)
    result = run_pipeline(
        definition,
        workdir=workdir,
        parameters=parameters,
        pipeline_name=setup.pipeline_name,
        use_cache=False,
    )
    reports_root = LocalS3(local_s3_root(workdir)).path_for(
        parameters.get("MonitoringS3Uri", defaults["MonitoringS3Uri"])
    )
    outcome: dict[str, Any] = {
        "status": result.status,
        "execution_id": result.execution_id,
        "failed_step": result.failed_step,
        "failure_reason": result.failure_reason,
        "reports": str(reports_root),
        "metrics": parameters["MetricsSink"],
        "accuracy_threshold": defaults.get("AccuracyThreshold"),
        "monitors": run_summaries(reports_root, result.execution_id) if result.succeeded else {},
    }
    data = read_metrics_sink(Path(parameters["MetricsSink"]))
    states = AlarmStates(workdir / "monitoring")
    evaluations = evaluate_all(setup.alarms, data, states)
    changes = route_changes(setup.assembly, evaluations, workdir)
    outcome["alarms_evaluated_at"] = (
        evaluations[0].at.strftime("%Y-%m-%dT%H:%M:%SZ") if evaluations and evaluations[0].at else None
    )
    outcome["alarms"] = format_states(evaluations)
    outcome["changes"] = format_outcomes(changes)
    outcome["alarm_states"] = {e.alarm.name: e.state for e in evaluations}
    outcome["alarms_without_data"] = sorted(e.alarm.name for e in evaluations if not e.has_data)
    outcome["state_changes"] = [asdict(change) for change in changes]
    (workdir / "monitoring").mkdir(parents=True, exist_ok=True)
    (workdir / "monitoring" / LAST_RUN_FILE).write_text(json.dumps(outcome, indent=2, default=str) + "\n")
    return outcome, result.succeeded


def has_findings(outcome: dict[str, Any]) -> bool:
    """Whether a monitor reported violations or an alarm is in ALARM."""
    violations = sum(len(run["violations"]) for run in outcome["monitors"].values())
    return bool(violations) or ALARM in outcome["alarm_states"].values()
