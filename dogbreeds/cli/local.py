"""`dogbreeds local ...`: run the system on one machine, no AWS account and no Docker."""

from __future__ import annotations

import argparse
import importlib

# Modules that register `local` sub-commands via ``register(subparsers)``.
LOCAL_COMMAND_MODULES: list[str] = [
    "dogbreeds.local_run",
    "dogbreeds.local_registry",
    "dogbreeds.local_serve",
    "dogbreeds.local_monitor",
    "dogbreeds.local_pipeline",
]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "local", help="run the pipeline, the registry, serving and monitoring on this machine"
    )
    local_subparsers = parser.add_subparsers(dest="local_command", metavar="LOCAL_COMMAND")
    for name in LOCAL_COMMAND_MODULES:
        importlib.import_module(name).register(local_subparsers)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)
