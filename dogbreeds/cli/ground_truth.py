"""`dogbreeds ground-truth`: the command line of dogbreeds/ground_truth.py, which writes the labels."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dogbreeds import ground_truth
from pipeline_code.container.dogbreeds_jobs.monitoring import monitor_window


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ground-truth",
        help="write SageMaker-format ground truth for the requests of a traffic record",
        description=ground_truth.__doc__.split("\n\n")[0],
    )
    parser.add_argument(
        "--records", required=True, type=Path, help="file written by `dogbreeds traffic --record`"
    )
    parser.add_argument("--out", required=True, help="s3://bucket/prefix or a folder; hour folders go below")
    parser.add_argument(
        "--wrong-fraction", type=float, default=0.0, help="share of labels made wrong on purpose (0-1)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed for which labels are wrong")
    parser.add_argument("--time", default="", help="ISO time whose hour folder to write (default: now)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        when = monitor_window.parse_time(args.time, "--time") if args.time else None
        summary = ground_truth.write_ground_truth(
            ground_truth.read_records(args.records),
            args.out,
            wrong_fraction=args.wrong_fraction,
            seed=args.seed,
            when=when,
        )
    except ValueError as error:  # MonitorDataError is one
        print(f"dogbreeds ground-truth: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(summary, sort_keys=True))
    return 0
