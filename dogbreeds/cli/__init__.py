"""`dogbreeds` console script: a thin argparse front over the library modules.

This package holds the command line only: argument parsers and the thin functions that turn parsed
arguments into calls of the library modules beside it in `dogbreeds/`. Each command module
exposes ``register(subparsers)`` that adds its sub-command and sets ``func`` on the parser; this
file only lists those modules, so adding a command is one line here.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from dogbreeds.aws_errors import configure_retries, run_guarded
from dogbreeds.cli.help import Parser

# Modules that register sub-commands, in the order `--help` shows them.
# `local` groups the commands that run the system on this machine (see local.py).
COMMAND_MODULES: list[str] = [
    "dogbreeds.cli.local",
    "dogbreeds.cli.sample_data",
    "dogbreeds.cli.dataset",
    "dogbreeds.cli.models",
    "dogbreeds.cli.pipeline",
    "dogbreeds.cli.traffic",
    "dogbreeds.cli.ground_truth",
    "dogbreeds.cli.demo",
]


def build_parser() -> argparse.ArgumentParser:
    # Parser's formatter (each option's help shows its default) passes to every sub-parser.
    parser = Parser(
        prog="dogbreeds",
        description="Operate the dog-breed MLOps system: locally, or against an AWS environment.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the command; AWS mistakes and Ctrl-C end as one line (aws_errors)."""
    configure_retries()

    def dispatch() -> int:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        return int(args.func(args) or 0)

    words = [word for word in (sys.argv[1:] if argv is None else argv) if not word.startswith("-")]
    return run_guarded(words[0] if words else "", dispatch)


if __name__ == "__main__":
    sys.exit(main())
