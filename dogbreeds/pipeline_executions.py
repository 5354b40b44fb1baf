"""The training pipeline's executions, on AWS and in local mode: a client and one table format.

`TrainingPipeline` reads and starts an environment's pipeline executions through boto3;
`format_steps` and `format_executions` print AWS executions and local mode's execution records
(`<workdir>/executions/*/execution.json`) in the same table. The commands are dogbreeds/cli/pipeline.py.
"""

from __future__ import annotations

import json
import sys
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from dogbreeds.environment import CommandError, resolve_environment

ENDED = ("Succeeded", "Failed", "Stopped")
LOG_GROUPS = {"ProcessingJob": "/aws/sagemaker/ProcessingJobs", "TrainingJob": "/aws/sagemaker/TrainingJobs"}
TAIL_LINES = 30


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


def training_pipeline(env_name: str, cdk_json: Path | None) -> TrainingPipeline:
    """The environment's training pipeline; an environment without one (it receives promoted
    models) is refused with how its models arrive."""
    names, settings = resolve_environment(env_name, cdk_json)
    if not settings.training.enabled:
        source = settings.promotion.source if settings.promotion else "another environment"
        raise CommandError(
            f"{env_name} has no training pipeline (training.enabled is false): it receives models "
            f"by promotion from {source}: dogbreeds models promote VERSION --from {source} --to {env_name}"
        )
    sagemaker, logs = make_clients(settings.region)
    return TrainingPipeline(names.training_pipeline, sagemaker, logs)


# ---- local mode ----------------------------------------------------------------------------------


def local_records(workdir: Path) -> list[tuple[str, dict[str, Any]]]:
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
