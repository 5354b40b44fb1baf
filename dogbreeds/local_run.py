"""`dogbreeds local run`: run the project's training pipeline on this machine.

There is one pipeline definition. This command renders it with local Locations (the code bundle
staged under the local S3 folder) and the chosen environment's training settings, stages the
dataset and pretrained weights where the definition's parameters point, and hands the JSON to the
local executor. It never builds a pipeline of its own, so what runs here is what `cdk deploy` ships.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dogbreeds.local_executor import DefinitionError, ExecutionResult, local_s3_root, run_pipeline
from dogbreeds.local_executor.command_line import add_execution_arguments, parse_param_overrides, report
from dogbreeds.local_executor.s3_mapping import LocalS3

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CDK_JSON = PROJECT_ROOT / "cdk.json"
# Parameter names of the training definition (pipeline_code/training_pipeline.py) this command fills.
DATASET_PARAMETER = "DatasetS3Uri"
WEIGHTS_PREFIX_PARAMETER = "PretrainedWeightsS3Prefix"
BACKBONE_PARAMETER = "Backbone"
WEIGHT_SUFFIXES = (".pt", ".pth", ".bin")


def load_training_settings(env_name: str) -> tuple[str, Any]:
    """(project prefix, TrainingSettings) of `env_name` in cdk.json, validated as synth does."""
    from stacks.settings import TrainingSettings, load_environment

    if not CDK_JSON.is_file():
        return "dogbreeds", TrainingSettings()
    context = json.loads(CDK_JSON.read_text()).get("context", {})
    project, settings = load_environment(context, env_name)
    return project, settings.training


def render_local_definition(workdir: Path, env_name: str) -> tuple[str, Any, str]:
    """The one training definition rendered with local Locations: (JSON, Locations, pipeline name)."""
    from pipeline_code.local_locations import LOCAL_ENV, prepare_local_locations
    from pipeline_code.training_pipeline import render_training_pipeline
    from stacks.naming import Names

    project, training = load_training_settings(env_name)
    names = Names(project, LOCAL_ENV)
    locations = prepare_local_locations(workdir)
    return render_training_pipeline(locations, training, names), locations, names.training_pipeline


def stage_dataset(data_dir: Path, dataset_uri: str, local_s3: LocalS3) -> None:
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


def stage_weights(weights_uri: str, backbone: str, local_s3: LocalS3, weights_file: Path | None) -> None:
    """Make sure the weights channel holds one state dict, as the training step expects.

    `--weights FILE` replaces what is there; otherwise an empty location gets the weights that
    ship in an installed package (EfficientNet-Lite0), and with none the run is refused here,
    before any step, instead of failing in Train with an empty channel.
    """
    from pipeline_code.container.backbones import default_weights_path

    target = local_s3.path_for(weights_uri)
    if weights_file is not None:
        if not Path(weights_file).is_file():
            raise DefinitionError(f"--weights {weights_file} is not a file")
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        shutil.copy2(weights_file, target / Path(weights_file).name)
        return
    if target.is_dir() and any(p.suffix in WEIGHT_SUFFIXES for p in target.rglob("*")):
        return
    shipped = default_weights_path(backbone)
    if shipped is None:
        raise DefinitionError(
            f"no pretrained weights for backbone {backbone!r} at {weights_uri} (local folder {target}): "
            "pass --weights FILE (an ImageNet state dict for that backbone), put one there, or use "
            f"--param {BACKBONE_PARAMETER}=efficientnet_lite0, whose weights ship in a package"
        )
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(shipped, target / shipped.name)


def run_local_training(
    *,
    workdir: Path,
    data: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    weights: Path | None = None,
    env_name: str = "dev",
    echo_logs: bool = False,
    use_cache: bool = True,
    stream: Any = sys.stdout,
) -> ExecutionResult:
    """Render, stage the dataset and weights, and run; returns how the execution ended."""

    workdir = Path(workdir)
    definition, locations, pipeline_name = render_local_definition(workdir, env_name)
    defaults = {p["Name"]: p.get("DefaultValue") for p in json.loads(definition)["Parameters"]}
    overrides = dict(overrides or {})
    local_s3 = LocalS3(local_s3_root(workdir))

    dataset_uri = str(overrides.get(DATASET_PARAMETER, defaults[DATASET_PARAMETER]))
    if data is not None:
        stage_dataset(data, dataset_uri, local_s3)
    elif not local_s3.exists(dataset_uri):
        raise DefinitionError(
            f"no dataset at {dataset_uri} (local folder {local_s3.path_for(dataset_uri)}): pass --data DIR, "
            "an ImageFolder tree (`dogbreeds sample-data DIR` writes a small one)"
        )
    backbone = str(overrides.get(BACKBONE_PARAMETER, defaults[BACKBONE_PARAMETER]))
    # The training channel is <prefix>/<backbone>/ (see pipeline_code/training_pipeline.py).
    prefix = str(overrides.get(WEIGHTS_PREFIX_PARAMETER, defaults[WEIGHTS_PREFIX_PARAMETER]))
    stage_weights(f"{prefix.rstrip('/')}/{backbone}/", backbone, local_s3, weights)
    return run_pipeline(
        definition,
        workdir=workdir,
        parameters=overrides,
        pipeline_name=pipeline_name,
        stream=stream,
        echo_logs=echo_logs,
        use_cache=use_cache,
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run", help="run the training pipeline definition on this machine (no AWS, no Docker)"
    )
    parser.add_argument(
        "--data", type=Path, default=None, help="ImageFolder tree to train on (one folder per breed)"
    )
    parser.add_argument(
        "--weights", type=Path, default=None, help="pretrained ImageNet state dict for the backbone (.pth)"
    )
    parser.add_argument(
        "--env", default="dev", help="cdk.json environment whose training settings give defaults"
    )
    add_execution_arguments(parser)
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from stacks.settings import SettingsError

    try:
        result = run_local_training(
            workdir=Path(args.workdir),
            data=args.data,
            overrides=parse_param_overrides(args.param),
            weights=args.weights,
            env_name=args.env,
            echo_logs=args.verbose,
            use_cache=not args.no_cache,
        )
    except (DefinitionError, SettingsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return report(result)
