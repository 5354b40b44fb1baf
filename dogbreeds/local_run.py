"""`dogbreeds local run`: run the training pipeline that `cdk deploy` would ship, on this machine.

The definition is the environment's ``AWS::SageMaker::Pipeline`` from its synthesised cloud
assembly (``cdk synth``), resolved for a local account and region, with the CDK file assets (the
code bundle, run_step.sh) staged into the local S3 folder under the keys `cdk deploy` uploads them
to. This command stages the dataset and pretrained weights where the definition's parameters
point and hands the definition to the local executor. There is no second rendering for local
mode: what runs here is what runs on AWS.
"""

from __future__ import annotations

import shutil
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from dogbreeds.cloud_assembly import AssemblyError, CloudAssembly, cached_assembly, synthesize
from dogbreeds.local_executor import DefinitionError, ExecutionResult, local_s3_root, run_pipeline
from dogbreeds.local_executor.s3_mapping import LocalS3

# Parameter names of the training definition (pipeline_code/training_pipeline.py) this command fills.
DATASET_PARAMETER = "DatasetS3Uri"
WEIGHTS_PREFIX_PARAMETER = "PretrainedWeightsS3Prefix"
BACKBONE_PARAMETER = "Backbone"
WEIGHT_SUFFIXES = (".pt", ".pth", ".bin")
# Step names of that definition (EVALUATE_STEP, FAIL_STEP there), read back for the closing summary.
EVALUATE_STEP = "Evaluate"
FAIL_STEP = "AccuracyBelowThreshold"
DEFAULT_ENV = "dev"


def load_assembly(
    workdir: Path, env_name: str, assembly_dir: Path | None, stream: TextIO | None = sys.stdout
) -> CloudAssembly:
    """The environment's cloud assembly (synthesised unless given), its file assets staged locally."""
    assembly = CloudAssembly.load(assembly_dir or synthesize(env_name, stream=stream))
    assembly.stage_file_assets(local_s3_root(workdir))
    return assembly


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
    from pipeline_code.container.dogbreeds_jobs.serving.backbones import default_weights_path

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
    env_name: str = DEFAULT_ENV,
    assembly_dir: Path | None = None,
    echo_logs: bool = False,
    use_cache: bool = True,
    stream: Any = sys.stdout,
) -> ExecutionResult:
    """Load the deployed definition, stage the dataset and weights, and run it."""

    workdir = Path(workdir)
    assembly = load_assembly(workdir, env_name, assembly_dir, stream)
    pipeline_name, definition = assembly.training_pipeline()
    defaults = {p["Name"]: p.get("DefaultValue") for p in definition["Parameters"]}
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


def pipeline_parameters(assembly_dir: Path) -> list[dict[str, Any]]:
    """The training definition's ``Parameters`` (Name, Type, DefaultValue) in an assembly."""
    return list(CloudAssembly.load(assembly_dir).training_pipeline()[1].get("Parameters", []))


def training_parameters(env_name: str, assembly_dir: Path | None = None) -> list[dict[str, Any]]:
    """The training definition's parameters in ``assembly_dir``, else in ``env_name`` synthesised."""
    return pipeline_parameters(assembly_dir or synthesize(env_name))


def parameter_table(parameters: list[Mapping[str, Any]]) -> str:
    """One aligned line per parameter: name, type, default ('-' when it has none)."""
    rows = [("NAME", "TYPE", "DEFAULT")] + [
        (str(p["Name"]), str(p.get("Type", "String")), str(p["DefaultValue"]) if "DefaultValue" in p else "-")
        for p in parameters
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    return "\n".join(f"  {n:<{widths[0]}}  {t:<{widths[1]}}  {d}".rstrip() for n, t, d in rows)


def parameters_epilog(env_name: str = DEFAULT_ENV) -> str:
    """--help's closing part: the parameters from the cached assembly, or how to list them."""
    how = f"`dogbreeds local run --env {env_name} --list-params`"
    assembly = cached_assembly(env_name)
    if assembly is not None:
        try:
            table = parameter_table(pipeline_parameters(assembly))
        except (AssemblyError, KeyError, OSError, ValueError):
            table = None
        if table is not None:
            intro = (
                f"pipeline parameters ({env_name}, from the cached cloud assembly; set with "
                f"--param NAME=VALUE; other environments: {how.replace(env_name, 'ENV', 1)}):"
            )
            return textwrap.fill(intro, 78, break_on_hyphens=False) + "\n" + table
    return textwrap.fill(
        f"pipeline parameters (set with --param NAME=VALUE): run {how} to list them with their types "
        f"and defaults (it synthesises the {env_name} cloud assembly first, which takes a while)",
        78, break_on_hyphens=False,
    )


def evaluation_summary(result: ExecutionResult, workdir: Path) -> str:
    """`evaluate: accuracy 0.8125; registered <group> version 3 (PendingManualApproval)`, or why not."""
    from dogbreeds.local_registry import LocalModelRegistry, RegistryError, evaluation_of
    from dogbreeds.model_evidence import metrics_of, number

    try:
        registered = [
            p for p in LocalModelRegistry(workdir).packages()
            if (p.get("source") or {}).get("pipeline_execution_id") == result.execution_id
        ]  # fmt: skip
    except RegistryError:
        registered = []
    if registered:
        package = registered[-1]
        accuracy = metrics_of(evaluation_of(package, workdir))["accuracy"]
        return (
            f"evaluate: accuracy {number(accuracy)}; registered {package['group']} version "
            f"{package['version']} ({package['approval_status']}): dogbreeds local models show "
            f"{package['version']}"
        )
    evaluate = result.properties.get(EVALUATE_STEP) or {}
    outputs = evaluate.get("ProcessingOutputConfig", {}).get("Outputs", [])
    uris = [o.get("S3Output", {}).get("S3Uri", "") for o in outputs if o.get("OutputName") == "evaluation"]
    accuracy = None
    if uris:
        package = {"metrics_uris": {"ModelQuality.Statistics": uris[0].rstrip("/") + "/evaluation.json"}}
        accuracy = metrics_of(evaluation_of(package, workdir))["accuracy"]
    if result.failed_step == FAIL_STEP:
        why = f"{result.failure_reason}" if result.failure_reason else "accuracy below the threshold"
    elif not result.succeeded:
        why = f"the run failed at step {result.failed_step!r}"
    else:
        why = "the run registered no version"
    evaluated = f"accuracy {number(accuracy)}" if uris else "the evaluate step did not run"
    return f"evaluate: {evaluated}; no version registered: {why}"
