"""`dogbreeds local ...`: run the system on one machine, no AWS account and no Docker."""

from __future__ import annotations

import argparse
import importlib

# Modules that register `local` sub-commands via ``register(subparsers)``, or `module:function`
# where the module's `register` adds another command.
LOCAL_COMMAND_MODULES: list[str] = [
    "dogbreeds.cli.local_run",
    "dogbreeds.cli.local_models",
    "dogbreeds.cli.local_serve",
    "dogbreeds.cli.local_monitor",
    "dogbreeds.cli.pipeline:register_local",
]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "local", help="run the pipeline, the registry, serving and monitoring on this machine"
    )
    local_subparsers = parser.add_subparsers(dest="local_command", metavar="LOCAL_COMMAND")
    for entry in LOCAL_COMMAND_MODULES:
        module, _, function = entry.partition(":")
        getattr(importlib.import_module(module), function or "register")(local_subparsers)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)
