"""`dogbreeds pipeline start|status|watch|list --env NAME`: run and follow an environment's training pipeline.

`start` checks parameter overrides against the deployed definition (the local executor's checker)
before it asks SageMaker to start anything. `status` shows each step, where its logs are, and the
end of a failed step's log. `dogbreeds local pipeline status|list` prints the same table for the
executions of local mode, through the same formatter.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from dogbreeds.cli.execution import parse_param_overrides
from dogbreeds.environment import CommandError
from dogbreeds.last_dataset import last_uploaded_dataset
from dogbreeds.local_executor.definition import check_overrides, parse_parameters
from dogbreeds.local_executor.errors import DefinitionError
from dogbreeds.pipeline_executions import (
    ENDED,
    ExecutionRow,
    TrainingPipeline,
    changed_parameters,
    format_executions,
    format_steps,
    local_records,
    local_step_rows,
    print_aws_status,
    training_pipeline,
)

DATASET_PARAMETER = "DatasetS3Uri"
DEFAULT_POLL_SECONDS = 30.0


def _pipeline(args: argparse.Namespace) -> TrainingPipeline:
    return training_pipeline(args.env, args.cdk_json)


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


def _local_status(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir)
    records = dict(local_records(workdir))
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
    for execution, record in local_records(Path(args.workdir))[: args.limit]:
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
