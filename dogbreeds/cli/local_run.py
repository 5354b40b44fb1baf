"""`dogbreeds local run`: the command line of dogbreeds/local_run.py, which stages and runs the
training definition `cdk deploy` ships, on this machine."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dogbreeds import local_run
from dogbreeds.cli.execution import add_execution_arguments, parse_param_overrides, report
from dogbreeds.cli.help import RawEpilogHelpFormatter
from dogbreeds.cloud_assembly import AssemblyError
from dogbreeds.local_executor import DefinitionError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the training pipeline definition on this machine (no AWS, no Docker)",
        formatter_class=RawEpilogHelpFormatter,
        epilog=local_run.parameters_epilog,  # called when --help prints, not on every command line
    )
    parser.add_argument(
        "--data", type=Path, default=None, help="ImageFolder tree to train on (one folder per breed)"
    )
    parser.add_argument(
        "--weights", type=Path, default=None, help="pretrained ImageNet state dict for the backbone (.pth)"
    )
    add_assembly_arguments(parser)
    add_execution_arguments(parser)
    parser.add_argument(
        "--list-params", action="store_true",
        help="print the pipeline's parameters (name, type, default) for --env and exit, run nothing",
    )  # fmt: skip
    parser.set_defaults(func=_run)


def add_assembly_arguments(parser: argparse.ArgumentParser) -> None:
    """--env and --assembly: which synthesised definition a local command runs."""
    parser.add_argument(
        "--env",
        default=local_run.DEFAULT_ENV,
        help="cdk.json environment whose synthesised pipeline runs (default: %(default)s)",
    )
    parser.add_argument(
        "--assembly",
        type=Path,
        default=None,
        help="an already synthesised cloud assembly (cdk.out) to run instead of synthesising --env",
    )


def _run(args: argparse.Namespace) -> int:
    if args.list_params:
        try:
            parameters = local_run.training_parameters(args.env, args.assembly)
        except AssemblyError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(local_run.parameter_table(parameters))
        return 0
    try:
        result = local_run.run_local_training(
            workdir=Path(args.workdir),
            data=args.data,
            overrides=parse_param_overrides(args.param),
            weights=args.weights,
            env_name=args.env,
            assembly_dir=args.assembly,
            echo_logs=args.verbose,
            use_cache=not args.no_cache,
        )
    except (DefinitionError, AssemblyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    code = report(result)
    print(local_run.evaluation_summary(result, Path(args.workdir)))
    return code
