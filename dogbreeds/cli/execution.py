"""Command-line pieces shared by `dogbreeds local run` and `python -m dogbreeds.local_executor`
(and `dogbreeds pipeline start`'s --param)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TextIO

from dogbreeds.local_executor.errors import DefinitionError
from dogbreeds.local_executor.executor import ExecutionResult


def parse_param_overrides(pairs: Sequence[str] | None) -> dict[str, str]:
    """`["Epochs=2", "Backbone=resnet18"]` to a dict; the definition then checks names and types."""
    overrides: dict[str, str] = {}
    for pair in pairs or []:
        name, separator, value = pair.partition("=")
        if not separator or not name.strip():
            raise DefinitionError(f"--param expects NAME=VALUE, got {pair!r}")
        if name.strip() in overrides:
            raise DefinitionError(f"--param {name.strip()} is given twice")
        overrides[name.strip()] = value
    return overrides


def add_execution_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a pipeline parameter (repeatable); the value is checked against its type",
    )
    parser.add_argument(
        "--workdir", default=".local", help="local mode's working folder (default: %(default)s)"
    )
    parser.add_argument(
        "--no-cache", action="store_true", help="run every step even if a cached result exists"
    )
    parser.add_argument("--verbose", action="store_true", help="stream every step's log to the console too")


def report(result: ExecutionResult, stream: TextIO = sys.stdout) -> int:
    """One closing line; the exit code is 0 only when the execution succeeded."""
    if result.succeeded:
        print(f"pipeline succeeded (execution {result.execution_id})", file=stream)
        return 0
    print(
        f"pipeline failed at step {result.failed_step!r}: {result.failure_reason} "
        f"(execution files: {result.execution_dir})",
        file=stream,
    )
    return 1
