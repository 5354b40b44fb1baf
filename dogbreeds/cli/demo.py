"""`dogbreeds demo`: the command line of dogbreeds/demo.py, the whole lifecycle on this machine."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dogbreeds.demo import DEFAULTS, Demo, DemoError

OPTION_HELP = {
    "breeds": "breeds in the generated dataset",
    "per_breed": "generated images per breed",
    "size": "nominal WIDTHxHEIGHT of the generated images",
    "epochs": "training epochs (pipeline parameter Epochs)",
    "image_size": "training image size (pipeline parameter ImageSize)",
    "traffic": "requests sent in each traffic phase",
    "threshold": "accuracy a version needs to be registered (AccuracyThreshold)",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="run the whole lifecycle locally: train, register, approve, serve, monitor"
    )
    parser.add_argument("--workdir", type=Path, default=Path(".local/demo"), help="folder the demo works in")
    for key, value in DEFAULTS.items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=type(value), default=value,
                            help=OPTION_HELP[key])  # fmt: skip
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    options = {key: getattr(args, key) for key in DEFAULTS}
    try:
        summary = Demo(args.workdir, options).run()
    except DemoError as error:
        print(f"\ndemo failed: {error}", file=sys.stderr)
        return 1
    print(summary.text())
    return 0
