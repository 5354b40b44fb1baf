"""`dogbreeds local run`: run the project's training pipeline on this machine.

There is one pipeline definition. This command renders it with local Locations (code bundle
staged under the local S3 folder) and hands it to the local executor; it never builds a pipeline
of its own, so what runs here is what `cdk deploy` ships.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

from dogbreeds.local_executor import DefinitionError, ExecutionResult, local_s3_root, run_pipeline
from dogbreeds.local_executor.command_line import add_execution_arguments, parse_param_overrides, report
from dogbreeds.local_executor.s3_mapping import LocalS3

PIPELINE_NAME = "dogbreeds-local-training"


def stage_dataset(data_dir: Path, dataset_uri: str, local_s3: LocalS3) -> str:
    """Copy an ImageFolder tree to the local S3 location the dataset parameter points at.

    The target is emptied first, so images removed from `data_dir` do not linger from an
    earlier run (and the preprocess step's cache sees the change).
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DefinitionError(
            f"--data {data_dir} is not a folder; pass an ImageFolder tree (one folder per breed)"
        )
    if not any(p.is_dir() for p in data_dir.iterdir()):
        raise DefinitionError(f"--data {data_dir} has no class folders; expected one folder per breed")
    target = local_s3.path_for(dataset_uri)
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(data_dir, target)
    return dataset_uri


def render_local_definition(workdir: Path) -> tuple[str, Any]:
    """The one training definition, rendered with local Locations; returns (JSON, locations)."""
    from pipeline_code.local_locations import prepare_local_locations
    from pipeline_code.training_pipeline import render_training_pipeline

    locations = prepare_local_locations(workdir)
    return render_training_pipeline(locations), locations


def run_local_training(
    *,
    workdir: Path,
    data: Path | None = None,
    overrides: dict[str, Any] | None = None,
    echo_logs: bool = False,
    use_cache: bool = True,
) -> ExecutionResult:
    """Render, stage `data` (if given) and run; the dataset parameter then points at the staged copy."""
    workdir = Path(workdir)
    definition, locations = render_local_definition(workdir)
    overrides = dict(overrides or {})
    if data is not None:
        dataset_uri = overrides.get(DATASET_PARAMETER) or locations.dataset_uri
        overrides[DATASET_PARAMETER] = stage_dataset(data, dataset_uri, LocalS3(local_s3_root(workdir)))
    return run_pipeline(
        definition,
        workdir=workdir,
        parameters=overrides,
        pipeline_name=PIPELINE_NAME,
        echo_logs=echo_logs,
        use_cache=use_cache,
    )


DATASET_PARAMETER = "DatasetS3Uri"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run", help="run the training pipeline definition on this machine (no AWS, no Docker)"
    )
    parser.add_argument(
        "--data", type=Path, default=None, help="ImageFolder tree to train on (one folder per breed)"
    )
    add_execution_arguments(parser)
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        result = run_local_training(
            workdir=Path(args.workdir),
            data=args.data,
            overrides=parse_param_overrides(args.param),
            echo_logs=args.verbose,
            use_cache=not args.no_cache,
        )
    except DefinitionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return report(result)
