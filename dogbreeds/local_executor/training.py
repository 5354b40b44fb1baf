"""Run a Training step through AWS's own training toolkit, as the PyTorch training image does.

The image's entry point is the sagemaker-training toolkit (`train`) with
``SAGEMAKER_TRAINING_MODULE=sagemaker_pytorch_container.training:main`` (sagemaker-pytorch-training):
it reads /opt/ml/input/config/*.json, downloads and unpacks ``sagemaker_submit_directory`` into
/opt/ml/code, sets the SM_* variables and launches ``sagemaker_program`` (through torchrun when the
definition enables torch_distributed). This module plays the platform's part around it, as
SageMaker documents it: channels staged under /opt/ml/input/data/<channel>, the config files
written from the request, checkpoints synced, /opt/ml/model packed into
``<S3OutputPath>/<job>/output/model.tar.gz``, and /opt/ml/output/failure read when the job fails.
The toolkits are the PyPI packages the image installs; `SAGEMAKER_BASE_DIR` moves their /opt/ml.
"""

from __future__ import annotations

import json
import re
import sys
import tarfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dogbreeds.local_executor.errors import DefinitionError, StepFailedError
from dogbreeds.local_executor.expressions import to_text
from dogbreeds.local_executor.import_guard import guard_environment
from dogbreeds.local_executor.processing import check_image
from dogbreeds.local_executor.progress import log_tail, run_logged, step_environment
from dogbreeds.local_executor.step_context import StepContext

CURRENT_HOST = "algo-1"
# The PyTorch training image's ENV (aws/deep-learning-containers pytorch/training Dockerfiles).
TRAINING_MODULE = "sagemaker_pytorch_container.training:main"
_UNSUPPORTED_DISTRIBUTIONS = (
    "sagemaker_mpi_enabled",
    "sagemaker_distributed_dataparallel_enabled",
    "sagemaker_parameter_server_enabled",
)


def check_training(name: str, arguments: Mapping[str, Any]) -> None:
    """Refuse, before the run starts, the Training features local mode cannot honour."""
    check_image(name, arguments.get("AlgorithmSpecification", {}).get("TrainingImage"))
    hyperparameters = arguments.get("HyperParameters", {})
    for required in ("sagemaker_program", "sagemaker_submit_directory"):
        if required not in hyperparameters:
            raise DefinitionError(
                f"Training step {name!r} has no {required} hyperparameter; local mode runs script-mode "
                "framework estimators (entry_point + source_dir), not bring-your-own training images"
            )
    for flag in _UNSUPPORTED_DISTRIBUTIONS:
        if _decode(hyperparameters.get(flag, "false")) is True:
            raise DefinitionError(
                f"Training step {name!r} enables {flag}; "
                "local mode supports only torch_distributed data parallel"
            )
    for channel in arguments.get("InputDataConfig", []):
        if "S3DataSource" not in channel.get("DataSource", {}):
            raise DefinitionError(
                f"Training step {name!r} channel {channel.get('ChannelName')!r} is not an S3DataSource "
                "(file-system channels are not supported locally)"
            )
        data_type = channel["DataSource"]["S3DataSource"].get("S3DataType", "S3Prefix")
        if data_type != "S3Prefix":
            raise DefinitionError(
                f"Training step {name!r} channel {channel.get('ChannelName')!r} has S3DataType "
                f"{data_type!r}; local mode supports S3Prefix only (manifest files are not read)"
            )


def _decode(value: Any) -> Any:
    """Hyperparameters arrive as JSON-encoded strings; the toolkit decodes what parses as JSON."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _instance_count(arguments: Mapping[str, Any]) -> int:
    count = arguments.get("ResourceConfig", {}).get("InstanceCount", 1)
    try:
        return max(1, int(count))
    except (TypeError, ValueError):
        raise DefinitionError(f"ResourceConfig.InstanceCount must be a whole number; got {count!r}") from None


def pack_model(model_dir: Path, archive_path: Path) -> None:
    """Pack a folder's contents as SageMaker packs /opt/ml/model: gzip tar, paths relative to it.

    Entries are sorted and carry no `./` prefix, so `tar -xzf model.tar.gz` in a serving
    container's model folder puts `code/inference.py` where the inference toolkit looks.
    """
    archive_path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive_path, "w:gz") as archive:
        for path in sorted(model_dir.rglob("*")):
            archive.add(path, arcname=path.relative_to(model_dir).as_posix(), recursive=False)


def run_training(context: StepContext) -> dict[str, Any]:
    """Run the training job and return its properties (DescribeTrainingJob's shape)."""
    arguments, paths = context.arguments, context.paths
    hyperparameters = {key: to_text(value) for key, value in arguments.get("HyperParameters", {}).items()}
    instance_count = _instance_count(arguments)

    opt_ml = paths.opt_ml
    model_dir, config_dir = opt_ml / "model", opt_ml / "input" / "config"
    output_dir, output_data_dir = opt_ml / "output", opt_ml / "output" / "data"
    for folder in (model_dir, config_dir, output_data_dir, opt_ml / "code"):
        folder.mkdir(parents=True, exist_ok=True)

    channels: dict[str, Any] = {}
    for channel in arguments.get("InputDataConfig", []):
        name, source = channel["ChannelName"], channel["DataSource"]["S3DataSource"]
        context.local_s3.download(source["S3Uri"], opt_ml / "input" / "data" / name)
        channels[name] = {
            "TrainingInputMode": channel.get(
                "InputMode", arguments.get("AlgorithmSpecification", {}).get("TrainingInputMode", "File")
            ),
            "S3DistributionType": source.get("S3DataDistributionType", "FullyReplicated"),
            "RecordWrapperType": channel.get("RecordWrapperType", "None"),
        }

    checkpoint = arguments.get("CheckpointConfig")
    checkpoint_dir = paths.local(checkpoint.get("LocalPath", "/opt/ml/checkpoints")) if checkpoint else None
    if checkpoint:
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        if context.local_s3.exists(checkpoint["S3Uri"]):
            # A restarted (spot-interrupted) job finds the checkpoints of the last attempt.
            context.local_s3.download(checkpoint["S3Uri"], checkpoint_dir)

    instance_type = arguments.get("ResourceConfig", {}).get("InstanceType", "local")
    resource_config = {
        "current_host": CURRENT_HOST,
        "current_instance_type": instance_type,
        "current_group_name": "homogeneousCluster",
        "hosts": [CURRENT_HOST],
        "instance_groups": [
            {
                "instance_group_name": "homogeneousCluster",
                "instance_type": instance_type,
                "hosts": [CURRENT_HOST],
            }
        ],
        "network_interface_name": "eth0",
    }
    # The request's hyperparameters as SageMaker writes them: string to string, JSON-encoded by the
    # SDK. Only /opt/ml is moved to the step's folder (see s3_mapping.ContainerPaths), and code the
    # toolkit would download from S3 itself (no network isolation) is read from the local S3 folder.
    submit = _decode(hyperparameters.get("sagemaker_submit_directory", ""))
    if isinstance(submit, str) and submit.startswith("s3://"):
        hyperparameters["sagemaker_submit_directory"] = json.dumps(str(context.local_s3.path_for(submit)))
    (config_dir / "hyperparameters.json").write_text(json.dumps(paths.map(hyperparameters), indent=2))
    (config_dir / "resourceconfig.json").write_text(json.dumps(resource_config, indent=2))
    (config_dir / "inputdataconfig.json").write_text(json.dumps(channels, indent=2))
    if instance_count > 1:
        with context.log_path.open("a") as log:
            log.write(f"note: InstanceCount={instance_count}; local mode runs one instance (algo-1)\n")

    environment = {
        **{str(k): str(v) for k, v in paths.map(arguments.get("Environment", {})).items()},
        "SAGEMAKER_BASE_DIR": str(opt_ml),
        "SAGEMAKER_TRAINING_MODULE": TRAINING_MODULE,
        "TRAINING_JOB_NAME": context.job_name,
        "TRAINING_JOB_ARN": _job_arn(context),
        # The PyTorch toolkit waits (up to 15 minutes) until every host name resolves; there is
        # no host "algo-1" here. This is the toolkit's own switch for running outside SageMaker.
        "SM_STUDIO_LOCAL_MODE": "true",
    }
    started = time.time()
    try:
        run_logged(
            context.name,
            [sys.executable, "-m", "sagemaker_training.cli.train"],
            # The toolkit and train.py may import only what the training image holds.
            environment=guard_environment(
                arguments["AlgorithmSpecification"]["TrainingImage"], step_environment(environment)
            ),
            cwd=context.step_dir,
            log_path=context.log_path,
            echo=context.echo,
            metrics=context.console,
        )
    except StepFailedError as failure:
        reason = _failure_reason(output_dir)
        if reason:
            message = f"{reason} (full log: {context.log_path})"
            raise StepFailedError(context.name, message, failure.log_tail) from None
        raise
    finally:
        if checkpoint:
            context.local_s3.upload(checkpoint_dir, checkpoint["S3Uri"])
    ended = time.time()

    output_prefix = arguments["OutputDataConfig"]["S3OutputPath"].rstrip("/") + f"/{context.job_name}/output"
    model_uri = f"{output_prefix}/model.tar.gz"
    pack_model(model_dir, context.step_dir / "packed" / "model.tar.gz")
    context.local_s3.put_file(context.step_dir / "packed" / "model.tar.gz", model_uri)
    if any(output_data_dir.iterdir()):
        pack_model(output_data_dir, context.step_dir / "packed" / "output.tar.gz")
        context.local_s3.put_file(
            context.step_dir / "packed" / "output.tar.gz", f"{output_prefix}/output.tar.gz"
        )
    return {
        **arguments,
        "TrainingJobName": context.job_name,
        "TrainingJobArn": _job_arn(context),
        "TrainingJobStatus": "Completed",
        "ModelArtifacts": {"S3ModelArtifacts": model_uri},
        "TrainingTimeInSeconds": int(ended - started),
        "BillableTimeInSeconds": int(ended - started),
        "FinalMetricDataList": final_metrics(
            arguments.get("AlgorithmSpecification", {}).get("MetricDefinitions", []),
            log_tail(context.log_path, 10_000),
        ),
    }


def _job_arn(context: StepContext) -> str:
    return f"arn:aws:sagemaker:local:000000000000:training-job/{context.job_name}"


def _failure_reason(output_dir: Path) -> str:
    """The toolkit's /opt/ml/output/failure, which SageMaker reports as the job's FailureReason."""
    failure = output_dir / "failure"
    if not failure.is_file():
        return ""
    lines = [line for line in failure.read_text(errors="replace").strip().splitlines() if line.strip()]
    return lines[-1][:500] if lines else ""


def final_metrics(definitions: list[Mapping[str, str]], log_text: str) -> list[dict[str, Any]]:
    """The last value each MetricDefinitions regex matched in the log, as SageMaker reports it."""
    metrics = []
    for definition in definitions:
        found = re.findall(definition["Regex"], log_text)
        if found:
            value = found[-1][0] if isinstance(found[-1], tuple) else found[-1]
            try:
                metrics.append(
                    {"MetricName": definition["Name"], "Value": float(value), "Timestamp": time.time()}
                )
            except ValueError:
                continue
    return metrics
