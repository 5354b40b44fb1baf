"""`dogbreeds local monitor`: the command line of dogbreeds/local_monitor.py, which runs the
monitoring definition over local traffic and evaluates the alarms."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dogbreeds.cli.local_run import add_assembly_arguments
from dogbreeds.cloud_assembly import AssemblyError
from dogbreeds.local_alarms import AlarmEvaluationError
from dogbreeds.local_monitor import (
    EXIT_VIOLATIONS,
    MonitorOptions,
    format_summary,
    has_findings,
    prepare_monitoring,
    run_monitoring,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "monitor",
        help="run the data- and model-quality monitors over local traffic, then evaluate the alarms",
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
    parser.add_argument(
        "--fail-on-violations",
        action="store_true",
        help=f"exit {EXIT_VIOLATIONS} when a monitor reports violations or an alarm is in ALARM",
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    options = MonitorOptions(
        workdir=args.workdir,
        env_name=args.env,
        assembly_dir=args.assembly,
        endpoint_name=args.endpoint_name,
        capture_dir=args.capture_dir,
        ground_truth_dir=args.ground_truth_dir,
        baseline_uri=args.baseline_uri,
        window_hours=args.window_hours,
        window_end=args.window_end,
    )
    try:
        setup = prepare_monitoring(options)
    except (ValueError, AssemblyError) as error:
        print(f"dogbreeds local monitor: error: {error}", file=sys.stderr)
        return 2
    try:
        outcome, succeeded = run_monitoring(setup, options)
    except AlarmEvaluationError as error:
        print(f"dogbreeds local monitor: error: cannot evaluate the alarms: {error}", file=sys.stderr)
        return 2
    print(format_summary(outcome))
    if not succeeded:
        return 1
    if args.fail_on_violations and has_findings(outcome):
        return EXIT_VIOLATIONS
    return 0
