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
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dogbreeds.cloud_assembly import AssemblyError
from dogbreeds.local_run import add_assembly_arguments, load_assembly

BASELINE_FILE = "live_baselines.json"


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


def monitor_parameters(
    args: argparse.Namespace, workdir: Path, baseline: str, defaults: dict[str, Any]
) -> dict[str, Any]:
    """The run's parameters: the definition's defaults, with local-only choices on top."""
    parameters: dict[str, Any] = {
        "BaselineS3Uri": baseline,
        "WindowHours": args.window_hours,
        "WindowEnd": args.window_end or next_hour(datetime.now(UTC)),
        # No CloudWatch here: the jobs append PutMetricData requests to this file instead.
        "MetricsSink": str((workdir / "monitoring" / "metrics.jsonl").resolve()),
    }
    endpoint = args.endpoint_name or defaults["EndpointName"]
    if endpoint != defaults["EndpointName"]:
        # Keep the deployed layout (<prefix>/<endpoint>) for another endpoint's traffic.
        default_endpoint = defaults["EndpointName"]
        parameters["EndpointName"] = endpoint
        for name in ("CaptureS3Uri", "GroundTruthS3Uri", "MonitoringS3Uri"):
            parameters[name] = defaults[name].removesuffix(default_endpoint) + endpoint
    if args.capture_dir:
        parameters["CaptureS3Uri"] = str((args.capture_dir / endpoint).resolve())
    if args.ground_truth_dir:
        parameters["GroundTruthS3Uri"] = str(args.ground_truth_dir.resolve())
    return parameters


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "monitor", help="run the data- and model-quality monitors over local capture and ground truth"
    )
    add_assembly_arguments(parser)
    parser.add_argument("--workdir", type=Path, default=Path(".local"), help="local mode's working folder")
    parser.add_argument(
        "--endpoint-name", default="", help="endpoint whose capture to judge (default: the environment's)"
    )
    parser.add_argument("--capture-dir", type=Path, default=None, help="serve's --capture-dir")
    parser.add_argument("--ground-truth-dir", type=Path, default=None, help="ground-truth --out")
    parser.add_argument("--baseline-uri", default="", help="run prefix or package .json")
    parser.add_argument("--window-hours", type=int, default=1, help="length of the judged window in hours")
    parser.add_argument("--window-end", default="", help="ISO time; default: the next full hour")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    workdir = args.workdir.resolve()
    from dogbreeds.local_executor import local_s3_root, run_pipeline
    from dogbreeds.local_executor.s3_mapping import LocalS3

    try:
        baseline = args.baseline_uri or str(live_baselines_file(workdir))
        assembly = load_assembly(workdir, args.env, args.assembly)
        pipeline_name, definition = assembly.monitoring_pipeline()
    except (ValueError, AssemblyError) as error:
        print(f"dogbreeds local monitor: error: {error}", file=sys.stderr)
        return 2
    defaults = {p["Name"]: p.get("DefaultValue") for p in definition["Parameters"]}
    parameters = monitor_parameters(args, workdir, baseline, defaults)
    result = run_pipeline(
        definition,
        workdir=workdir,
        parameters=parameters,
        pipeline_name=pipeline_name,
        use_cache=False,
    )
    reports = parameters.get("MonitoringS3Uri", defaults["MonitoringS3Uri"])
    print(
        json.dumps(
            {
                "status": result.status,
                "execution_id": result.execution_id,
                "failed_step": result.failed_step,
                "failure_reason": result.failure_reason,
                "reports": str(LocalS3(local_s3_root(workdir)).path_for(reports)),
                "metrics": parameters["MetricsSink"],
            },
            indent=2,
        )
    )
    return 0 if result.succeeded else 1
