"""`dogbreeds pipeline start|status|watch|list --env NAME`: run and follow an environment's training pipeline.

`start` checks parameter overrides against the deployed definition (the local executor's checker)
before it asks SageMaker to start anything. `status` shows each step, where its logs are, and the
end of a failed step's log. `dogbreeds local pipeline status|list` prints the same table for the
executions of local mode, through the same formatter.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from dogbreeds.cli.execution import parse_param_overrides
from dogbreeds.environment import CommandError, resolve_environment
from dogbreeds.last_dataset import last_uploaded_dataset
from dogbreeds.local_executor.definition import check_overrides, parse_parameters
from dogbreeds.local_executor.errors import DefinitionError

DATASET_PARAMETER = "DatasetS3Uri"
ENDED = ("Succeeded", "Failed", "Stopped")
LOG_GROUPS = {"ProcessingJob": "/aws/sagemaker/ProcessingJobs", "TrainingJob": "/aws/sagemaker/TrainingJobs"}
TAIL_LINES = 30
DEFAULT_POLL_SECONDS = 30.0


# ---- one formatter for AWS and local executions -------------------------------------------------


@dataclass(frozen=True)
class StepRow:
    name: str
    status: str
    started: datetime | None = None
    ended: datetime | None = None
    seconds: float | None = None
    reason: str = ""
    logs: str = ""


@dataclass(frozen=True)
class ExecutionRow:
    execution: str
    status: str
    started: datetime | None = None
    changed_parameters: Mapping[str, Any] | None = None


def _time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{seconds:.1f}s"


def format_steps(execution: str, status: str, steps: Iterable[StepRow], reason: str = "") -> str:
    rows = list(steps)
    lines = [f"execution {execution}: {status}" + (f" ({reason})" if reason else "")]
    if not rows:
        lines.append("  no steps have started yet")
        return "\n".join(lines)
    width = max(len("STEP"), *(len(r.name) for r in rows))
    lines.append(f"{'STEP':<{width}}  {'STATUS':<10}  {'STARTED':<19}  {'ENDED':<19}  {'TOOK':>8}")
    for row in rows:
        seconds = row.seconds
        if seconds is None and row.started and row.ended:
            seconds = (row.ended - row.started).total_seconds()
        lines.append(
            f"{row.name:<{width}}  {row.status:<10}  {_time(row.started):<19}  {_time(row.ended):<19}  "
            f"{_duration(seconds):>8}"
        )
        if row.reason:
            lines.append(f"{'':<{width}}  reason: {row.reason}")
        if row.logs:
            lines.append(f"{'':<{width}}  logs: {row.logs}")
    return "\n".join(lines)


def format_executions(executions: Iterable[ExecutionRow]) -> str:
    rows = list(executions)
    if not rows:
        return "No executions yet."
    width = max(len("EXECUTION"), *(len(r.execution) for r in rows))
    lines = [f"{'EXECUTION':<{width}}  {'STATUS':<10}  {'STARTED':<19}  PARAMETERS (changed from defaults)"]
    for row in rows:
        changed = " ".join(f"{k}={v}" for k, v in sorted((row.changed_parameters or {}).items()))
        line = f"{row.execution:<{width}}  {row.status:<10}  {_time(row.started):<19}  {changed}"
        lines.append(line.rstrip())
    return "\n".join(lines)


# ---- AWS -----------------------------------------------------------------------------------------


def make_clients(region: str | None) -> tuple[Any, Any]:
    """SageMaker and CloudWatch Logs clients (tests replace this to stub the clients)."""
    import boto3

    return boto3.client("sagemaker", region_name=region), boto3.client("logs", region_name=region)


class TrainingPipeline:
    """The environment's training pipeline and its executions, through boto3."""

    def __init__(self, name: str, sagemaker: Any, logs: Any) -> None:
        self.name = name
        self.sagemaker = sagemaker
        self.logs = logs
        self._description: dict[str, Any] | None = None

    def description(self) -> dict[str, Any]:
        if self._description is None:
            self._description = self.sagemaker.describe_pipeline(PipelineName=self.name)
        return self._description

    def definition(self) -> dict[str, Any]:
        return json.loads(self.description()["PipelineDefinition"])

    def start(self, values: Mapping[str, Any]) -> str:
        parameters = [{"Name": name, "Value": _parameter_text(v)} for name, v in values.items()]
        return self.sagemaker.start_pipeline_execution(
            PipelineName=self.name, PipelineParameters=parameters
        )["PipelineExecutionArn"]

    def execution_arn(self, execution: str | None) -> str:
        if execution and execution.startswith("arn:"):
            return execution
        if execution:
            return f"{self.description()['PipelineArn']}/execution/{execution}"
        newest = self.sagemaker.list_pipeline_executions(
            PipelineName=self.name, SortBy="CreationTime", SortOrder="Descending", MaxResults=1
        )["PipelineExecutionSummaries"]
        if not newest:
            raise CommandError(f"{self.name} has no executions yet; start one: `dogbreeds pipeline start`")
        return newest[0]["PipelineExecutionArn"]

    def execution(self, arn: str) -> dict[str, Any]:
        return self.sagemaker.describe_pipeline_execution(PipelineExecutionArn=arn)

    def steps(self, arn: str) -> list[dict[str, Any]]:
        steps: list[dict[str, Any]] = []
        request: dict[str, Any] = {"PipelineExecutionArn": arn, "SortOrder": "Ascending"}
        while True:
            page = self.sagemaker.list_pipeline_execution_steps(**request)
            steps.extend(page.get("PipelineExecutionSteps", []))
            if not page.get("NextToken"):
                return steps
            request["NextToken"] = page["NextToken"]

    def executions(self, limit: int) -> list[dict[str, Any]]:
        return self.sagemaker.list_pipeline_executions(
            PipelineName=self.name, SortBy="CreationTime", SortOrder="Descending", MaxResults=limit
        )["PipelineExecutionSummaries"]

    def parameters_of(self, arn: str) -> dict[str, str]:
        page = self.sagemaker.list_pipeline_parameters_for_execution(PipelineExecutionArn=arn)
        return {p["Name"]: p["Value"] for p in page.get("PipelineParameters", [])}

    def log_tail(self, group: str, job_name: str, lines: int = TAIL_LINES) -> list[str]:
        """The last `lines` messages of the job's streams; empty when it wrote none (yet)."""
        tail: deque[str] = deque(maxlen=lines)
        request: dict[str, Any] = {"logGroupName": group, "logStreamNamePrefix": job_name}
        try:
            while True:
                page = self.logs.filter_log_events(**request)
                tail.extend(event["message"].rstrip("\n") for event in page.get("events", []))
                token = page.get("nextToken")
                if not token or token == request.get("nextToken"):
                    return list(tail)
                request["nextToken"] = token
        except self.logs.exceptions.ResourceNotFoundException:
            return []


def _parameter_text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def changed_parameters(values: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, str]:
    """The values that differ from their parameter's default, as text."""
    return {
        name: _parameter_text(value) for name, value in values.items()
        if name not in defaults or _parameter_text(defaults[name]) != _parameter_text(value)
    }


def job_of(step: Mapping[str, Any]) -> tuple[str, str] | None:
    """(log group, job name) of a processing or training step, None for other steps."""
    metadata = step.get("Metadata", {})
    for kind, group in LOG_GROUPS.items():
        arn = metadata.get(kind, {}).get("Arn")
        if arn:
            return group, arn.rsplit("/", 1)[-1]
    return None


def aws_step_rows(steps: Iterable[Mapping[str, Any]]) -> list[StepRow]:
    rows = []
    for step in steps:
        job = job_of(step)
        rows.append(StepRow(
            name=step["StepName"],
            status=step.get("StepStatus", ""),
            started=step.get("StartTime"),
            ended=step.get("EndTime"),
            reason=step.get("FailureReason", ""),
            logs=f"CloudWatch {job[0]}, streams {job[1]}/*" if job else "",
        ))
    return rows


def print_aws_status(pipeline: TrainingPipeline, arn: str, out=None) -> str:
    """Print the execution's steps (and a failed job's log tail); return the execution's status."""
    out = out or sys.stdout
    execution = pipeline.execution(arn)
    status = execution["PipelineExecutionStatus"]
    steps = pipeline.steps(arn)
    print(format_steps(arn, status, aws_step_rows(steps), execution.get("FailureReason", "")), file=out)
    for step in steps:
        job = job_of(step)
        if step.get("StepStatus") == "Failed" and job:
            tail = pipeline.log_tail(*job)
            print(f"--- last {len(tail)} log lines of step {step['StepName']!r} ({job[1]}) ---", file=out)
            print("\n".join(tail) if tail else "(no log events found)", file=out)
            print("---", file=out)
    return status


def _pipeline(args: argparse.Namespace) -> TrainingPipeline:
    names, settings = resolve_environment(args.env, args.cdk_json)
    if not settings.training.enabled:
        source = settings.promotion.source if settings.promotion else "another environment"
        raise CommandError(
            f"{args.env} has no training pipeline (training.enabled is false): it receives models "
            f"by promotion from {source}: dogbreeds models promote VERSION --from {source} --to {args.env}"
        )
    sagemaker, logs = make_clients(settings.region)
    return TrainingPipeline(names.training_pipeline, sagemaker, logs)


def _usage_errors(work: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return work(args)
        except (CommandError, DefinitionError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2

    return run


def _start(args: argparse.Namespace) -> int:
    overrides = parse_param_overrides(args.param)
    dataset = args.dataset or overrides.get(DATASET_PARAMETER) or last_uploaded_dataset(args.env)
    if not dataset:
        raise CommandError(
            f"no dataset for environment {args.env!r}: pass --dataset s3://... or run "
            f"`dogbreeds dataset upload DIR --env {args.env}` first (start uses the last URI it printed)"
        )
    overrides[DATASET_PARAMETER] = dataset
    pipeline = _pipeline(args)
    values = check_overrides(parse_parameters(pipeline.definition()), overrides)
    arn = pipeline.start(values)
    print(f"started {pipeline.name} on {DATASET_PARAMETER}={dataset}")
    print(f"execution: {arn}")
    if not args.wait:
        print(f"follow it with: dogbreeds pipeline watch --env {args.env} {arn}")
        return 0
    return _follow(pipeline, arn, args.poll_seconds, show_steps=False)


def _follow(pipeline: TrainingPipeline, arn: str, poll_seconds: float, show_steps: bool) -> int:
    while True:
        if show_steps:
            status = print_aws_status(pipeline, arn)
        else:
            status = pipeline.execution(arn)["PipelineExecutionStatus"]
        if status in ENDED:
            break
        print(f"waiting for {arn} ({status}); next check in {poll_seconds:g} s", flush=True)
        time.sleep(poll_seconds)
    if not show_steps:
        status = print_aws_status(pipeline, arn)
    print(f"execution ended: {status}")
    return 0 if status == "Succeeded" else 1


def _status(args: argparse.Namespace) -> int:
    pipeline = _pipeline(args)
    status = print_aws_status(pipeline, pipeline.execution_arn(args.execution))
    return 0 if status != "Failed" else 1


def _watch(args: argparse.Namespace) -> int:
    pipeline = _pipeline(args)
    return _follow(pipeline, pipeline.execution_arn(args.execution), args.poll_seconds, show_steps=True)


def _list(args: argparse.Namespace) -> int:
    pipeline = _pipeline(args)
    defaults = {p.name: p.default for p in parse_parameters(pipeline.definition()).values()}
    rows = []
    for summary in pipeline.executions(args.limit):
        arn = summary["PipelineExecutionArn"]
        values = pipeline.parameters_of(arn)
        changed = changed_parameters(values, defaults)
        rows.append(ExecutionRow(arn.rsplit("/", 1)[-1], summary.get("PipelineExecutionStatus", ""),
                                 summary.get("StartTime"), changed))
    print(f"{pipeline.name}, newest first:")
    print(format_executions(rows))
    return 0


# ---- local mode ----------------------------------------------------------------------------------


def _local_records(workdir: Path) -> list[tuple[str, dict[str, Any]]]:
    records = []
    for path in sorted((workdir / "executions").glob("*/execution.json"), reverse=True):
        try:
            records.append((path.parent.name, json.loads(path.read_text())))
        except (OSError, ValueError):
            continue
    return records


def local_step_rows(record: Mapping[str, Any], execution_dir: Path) -> list[StepRow]:
    rows = []
    for name, step in record.get("steps", {}).items():
        log = execution_dir / name / "step.log"
        rows.append(StepRow(
            name=name,
            status=step.get("status", ""),
            seconds=step.get("seconds"),
            reason=step.get("detail", ""),
            logs=str(log) if log.is_file() else "",
        ))
    return rows


def _local_status(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir)
    records = dict(_local_records(workdir))
    if not records:
        raise CommandError(f"no executions under {workdir / 'executions'}; run `dogbreeds local run` first")
    execution = args.execution or max(records)
    if execution not in records:
        raise CommandError(f"no execution {execution!r} under {workdir / 'executions'}; "
                           f"known: {', '.join(sorted(records, reverse=True))}")
    record = records[execution]
    print(format_steps(execution, record.get("status", ""),
                       local_step_rows(record, workdir / "executions" / execution),
                       record.get("failure_reason") or ""))
    return 0 if record.get("status") != "Failed" else 1


def _local_list(args: argparse.Namespace) -> int:
    rows = []
    for execution, record in _local_records(Path(args.workdir))[: args.limit]:
        try:
            started = datetime.strptime(execution.split("-", 1)[0], "%Y%m%dT%H%M%S")
        except ValueError:
            started = None
        changed = changed_parameters(record.get("parameters", {}), record.get("defaults", {}))
        rows.append(ExecutionRow(execution, record.get("status", ""), started, changed))
    print(format_executions(rows))
    return 0


# ---- argparse ------------------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("pipeline", help="start and follow an AWS environment's training pipeline")
    actions = parser.add_subparsers(dest="pipeline_command", metavar="ACTION")

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--env", required=True, help="environment name from cdk.json (dev, staging, prod)")
        sub.add_argument("--cdk-json", type=Path, default=None, help="cdk.json to read names from")

    def polling(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--poll-seconds", type=float, default=DEFAULT_POLL_SECONDS,
                         help="seconds between checks (default: %(default)s)")

    start = actions.add_parser("start", help="start the training pipeline, parameters checked first")
    common(start)
    start.add_argument("--dataset", default=None,
                       help="DatasetS3Uri (default: the one the last `dogbreeds dataset upload` printed)")
    start.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                       help="override a pipeline parameter (repeatable); checked against the deployed one")
    start.add_argument("--wait", action="store_true",
                       help="wait until the execution ends; exit 0 only on success")
    polling(start)
    start.set_defaults(func=_usage_errors(_start))

    for action, work, text in (
        ("status", _status, "each step of an execution, its logs, and a failed step's log tail"),
        ("watch", _watch, "status, refreshed until the execution ends"),
    ):
        sub = actions.add_parser(action, help=text)
        common(sub)
        sub.add_argument("execution", nargs="?", default=None,
                         help="execution ARN or id (default: the newest)")
        if action == "watch":
            polling(sub)
        sub.set_defaults(func=_usage_errors(work))

    listing = actions.add_parser("list", help="recent executions and the parameters they changed")
    common(listing)
    listing.add_argument("--limit", type=int, default=10, help="how many (default: %(default)s)")
    listing.set_defaults(func=_usage_errors(_list))
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def register_local(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("pipeline", help="status and list of local pipeline executions")
    actions = parser.add_subparsers(dest="local_pipeline_command", metavar="ACTION")
    status = actions.add_parser("status", help="each step of a local execution (default: the newest)")
    status.add_argument("execution", nargs="?", default=None, help="execution id (see `local pipeline list`)")
    listing = actions.add_parser("list", help="local executions, newest first")
    listing.add_argument("--limit", type=int, default=10, help="how many (default: %(default)s)")
    for sub in (status, listing):
        sub.add_argument(
            "--workdir", default=".local", help="local mode's working folder (default: %(default)s)"
        )
    status.set_defaults(func=_usage_errors(_local_status))
    listing.set_defaults(func=_usage_errors(_local_list))
    parser.set_defaults(func=lambda args: parser.print_help() or 2)
