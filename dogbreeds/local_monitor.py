"""`dogbreeds local monitor`: run the monitoring pipeline on this machine over local traffic.

    dogbreeds local monitor [--workdir .local] [--endpoint-name dogbreeds-local]
        [--capture-dir DIR] [--ground-truth-dir DIR] [--baseline-uri URI] [--window-hours N]
        [--window-end ISO]

Renders the same monitoring definition the cloud runs (with local Locations) and runs it through
the local executor. Capture is what `dogbreeds local serve --capture-dir` wrote, ground truth what
`dogbreeds ground-truth --out` wrote; the baselines are the newest Approved package's in the local
model registry (``--baseline-uri`` overrides). Metrics go to ``<workdir>/monitoring/metrics.jsonl``
in PutMetricData's request shape; reports to ``<workdir>/s3/<bucket>/monitoring/<endpoint>/``.
By default the window ends at the next full hour, so traffic sent a minute ago is included.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pipeline_code.local_locations import LOCAL_ENV, local_s3_root, prepare_local_locations
from stacks.naming import CAPTURE_PREFIX, GROUND_TRUTH_PREFIX, MONITORING_PREFIX, Names
from stacks.settings import MonitoringSettings

PROJECT = "dogbreeds"
DEFAULT_ENDPOINT = "dogbreeds-local"  # `dogbreeds local serve`'s default --endpoint-name
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
    document = {"ModelPackageArn": package["arn"], "DriftCheckBaselines": package["drift_check_baselines"]}
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def next_hour(moment: datetime) -> str:
    return (moment.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


def monitor_parameters(args: argparse.Namespace, workdir: Path, baseline: str, bucket: str) -> dict[str, Any]:
    endpoint = args.endpoint_name
    capture = args.capture_dir or workdir / "s3" / bucket / CAPTURE_PREFIX
    ground_truth = args.ground_truth_dir or workdir / "s3" / bucket / GROUND_TRUTH_PREFIX / endpoint
    return {
        "EndpointName": endpoint,
        "CaptureS3Uri": str((Path(capture) / endpoint).resolve()),
        "GroundTruthS3Uri": str(Path(ground_truth).resolve()),
        "MonitoringS3Uri": f"s3://{bucket}/{MONITORING_PREFIX}/{endpoint}",
        "BaselineS3Uri": baseline,
        "WindowHours": args.window_hours,
        "WindowEnd": args.window_end or next_hour(datetime.now(UTC)),
        "MetricsSink": str((workdir / "monitoring" / "metrics.jsonl").resolve()),
    }


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "monitor", help="run the data- and model-quality monitors over local capture and ground truth"
    )
    parser.add_argument("--workdir", type=Path, default=Path(".local"))
    parser.add_argument("--endpoint-name", default=DEFAULT_ENDPOINT)
    parser.add_argument("--capture-dir", type=Path, default=None, help="serve's --capture-dir")
    parser.add_argument("--ground-truth-dir", type=Path, default=None, help="ground-truth --out")
    parser.add_argument("--baseline-uri", default="", help="run prefix or package .json")
    parser.add_argument("--window-hours", type=int, default=1)
    parser.add_argument("--window-end", default="", help="ISO time; default: the next full hour")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    workdir = args.workdir.resolve()
    from dogbreeds.local_executor import run_pipeline
    from pipeline_code.monitoring_pipeline import render_monitoring_pipeline

    try:
        baseline = args.baseline_uri or str(live_baselines_file(workdir))
    except ValueError as error:
        print(f"dogbreeds local monitor: error: {error}", file=sys.stderr)
        return 2
    locations = prepare_local_locations(workdir)
    names = Names(PROJECT, LOCAL_ENV)
    definition = render_monitoring_pipeline(locations, MonitoringSettings(), names)
    parameters = monitor_parameters(args, workdir, baseline, locations.bucket)
    result = run_pipeline(
        definition,
        workdir=workdir,
        parameters=parameters,
        pipeline_name=names.monitoring_pipeline,
        use_cache=False,
    )
    print(
        json.dumps(
            {
                "status": result.status,
                "execution_id": result.execution_id,
                "failed_step": result.failed_step,
                "failure_reason": result.failure_reason,
                "reports": str(
                    local_s3_root(workdir) / locations.bucket / MONITORING_PREFIX / args.endpoint_name
                ),
                "metrics": parameters["MetricsSink"],
            },
            indent=2,
        )
    )
    return 0 if result.succeeded else 1
