"""Run a Training step the way the SageMaker training toolkit runs a script-mode job.

The toolkit (inside the AWS framework images) unpacks `sagemaker_submit_directory` into
/opt/ml/code, stages channels under /opt/ml/input/data, writes /opt/ml/input/config/*.json, sets
the SM_* variables and runs `python <sagemaker_program> --name value ...`; the platform then packs
/opt/ml/model into `<S3OutputPath>/<job>/output/model.tar.gz`. This module does the same steps.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tarfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dogbreeds.local_executor.errors import DefinitionError, StepFailedError
from dogbreeds.local_executor.expressions import to_text
from dogbreeds.local_executor.progress import log_tail, run_logged, step_environment
from dogbreeds.local_executor.step_context import StepContext

CURRENT_HOST = "algo-1"
# Hyperparameters the SDK adds for the toolkit; they are not passed to the script.
_UNSUPPORTED_DISTRIBUTIONS = (
    "sagemaker_mpi_enabled",
    "sagemaker_distributed_dataparallel_enabled",
    "sagemaker_parameter_server_enabled",
)


def check_training(name: str, arguments: Mapping[str, Any]) -> None:
    """Refuse, before the run starts, the Training features local mode cannot honour."""
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


def _decode(value: Any) -> Any:
    """Hyperparameters arrive as JSON-encoded strings; the toolkit decodes what parses as JSON."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _to_cmd_args(hyperparameters: Mapping[str, Any]) -> list[str]:
    """`--name value` pairs in sorted order, as the toolkit's `mapping.to_cmd_args` builds them."""
    arguments: list[str] = []
    for key in sorted(hyperparameters):
        value = hyperparameters[key]
        arguments.append(f"--{key}" if len(key) > 1 else f"-{key}")
        if isinstance(value, dict):
            arguments.append(",".join(f"{k}={v}" for k, v in sorted(value.items())))
        else:
            arguments.append(str(value))
    return arguments


def detected_gpu_count() -> int:
    """GPUs on this machine, without importing torch (which costs seconds per step)."""
    if "SM_NUM_GPUS" in os.environ:
        return int(os.environ["SM_NUM_GPUS"])
    return len([p for p in Path("/dev").glob("nvidia[0-9]*") if p.name[len("nvidia") :].isdigit()])


def _instance_count(arguments: Mapping[str, Any]) -> int:
    count = arguments.get("ResourceConfig", {}).get("InstanceCount", 1)
    try:
        return max(1, int(count))
    except (TypeError, ValueError):
        raise DefinitionError(f"ResourceConfig.InstanceCount must be a whole number; got {count!r}") from None


def _code_source(context: StepContext, uri: str) -> Path:
    if uri.startswith("s3://"):
        return context.local_s3.path_for(uri)
    if uri.startswith("file://"):
        return Path(uri[len("file://") :])
    return Path(uri)


def _stage_code(context: StepContext, submit_directory: str, code_dir: Path) -> None:
    source = _code_source(context, submit_directory)
    code_dir.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, code_dir, dirs_exist_ok=True)
    elif source.is_file() and tarfile.is_tarfile(source):
        with tarfile.open(source) as archive:
            archive.extractall(code_dir, filter="data")
    else:
        raise StepFailedError(
            context.name,
            f"sagemaker_submit_directory {submit_directory!r} is neither a tar.gz nor a folder "
            f"(looked at {source})",
        )


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
    raw_hyperparameters = {key: to_text(value) for key, value in arguments.get("HyperParameters", {}).items()}
    decoded = {key: paths.map(_decode(value)) for key, value in raw_hyperparameters.items()}
    user_hyperparameters = {k: v for k, v in decoded.items() if not k.startswith("sagemaker_")}
    program = str(decoded["sagemaker_program"])
    count = _instance_count(arguments)
    distributed = decoded.get("sagemaker_torch_distributed_enabled") is True and count > 1

    opt_ml = paths.opt_ml
    code_dir, model_dir = opt_ml / "code", opt_ml / "model"
    input_dir, config_dir = opt_ml / "input", opt_ml / "input" / "config"
    output_dir, output_data_dir = opt_ml / "output", opt_ml / "output" / "data"
    for folder in (model_dir, config_dir, output_data_dir, output_dir / "intermediate"):
        folder.mkdir(parents=True, exist_ok=True)

    channels: dict[str, Any] = {}
    environment: dict[str, str] = {}
    for channel in arguments.get("InputDataConfig", []):
        name, source = channel["ChannelName"], channel["DataSource"]["S3DataSource"]
        channel_dir = input_dir / "data" / name
        context.local_s3.download(source["S3Uri"], channel_dir)
        channels[name] = {
            "TrainingInputMode": channel.get(
                "InputMode", arguments.get("AlgorithmSpecification", {}).get("TrainingInputMode", "File")
            ),
            "S3DistributionType": source.get("S3DataDistributionType", "FullyReplicated"),
            "RecordWrapperType": channel.get("RecordWrapperType", "None"),
        }
        environment[f"SM_CHANNEL_{name.upper()}"] = str(channel_dir)

    # With network isolation the SDK ships the code as a "code" channel and points the submit
    # directory into it, so the channels must be staged before the code is unpacked.
    _stage_code(context, str(decoded["sagemaker_submit_directory"]), code_dir)

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
    (config_dir / "hyperparameters.json").write_text(json.dumps(paths.map(raw_hyperparameters), indent=2))
    (config_dir / "resourceconfig.json").write_text(json.dumps(resource_config, indent=2))
    (config_dir / "inputdataconfig.json").write_text(json.dumps(channels, indent=2))

    command_arguments = _to_cmd_args(user_hyperparameters)
    num_gpus = detected_gpu_count()
    environment.update(
        {
            "SM_MODEL_DIR": str(model_dir),
            "SM_OUTPUT_DATA_DIR": str(output_data_dir),
            "SM_OUTPUT_DIR": str(output_dir),
            "SM_OUTPUT_INTERMEDIATE_DIR": str(output_dir / "intermediate"),
            "SM_INPUT_DIR": str(input_dir),
            "SM_INPUT_CONFIG_DIR": str(config_dir),
            "SM_CHANNELS": json.dumps(sorted(channels)),
            "SM_HPS": json.dumps(user_hyperparameters, sort_keys=True),
            "SM_USER_ARGS": json.dumps(command_arguments),
            "SM_USER_ENTRY_POINT": program,
            "SM_MODULE_NAME": program.removesuffix(".py"),
            "SM_MODULE_DIR": str(decoded["sagemaker_submit_directory"]),
            "SM_NUM_GPUS": str(num_gpus),
            "SM_NUM_CPUS": str(os.cpu_count() or 1),
            "SM_HOSTS": json.dumps([CURRENT_HOST]),
            "SM_CURRENT_HOST": CURRENT_HOST,
            "SM_CURRENT_INSTANCE_TYPE": instance_type,
            "SM_NETWORK_INTERFACE_NAME": "eth0",
            "SM_RESOURCE_CONFIG": json.dumps(resource_config),
            "SM_INPUT_DATA_CONFIG": json.dumps(channels),
            "SM_LOG_LEVEL": str(decoded.get("sagemaker_container_log_level", 20)),
            "SM_FRAMEWORK_PARAMS": json.dumps(
                {k: v for k, v in decoded.items() if k.startswith("sagemaker_")}
            ),
            "SM_TRAINING_ENV": json.dumps(
                {
                    "job_name": context.job_name,
                    "hyperparameters": user_hyperparameters,
                    "current_host": CURRENT_HOST,
                    "hosts": [CURRENT_HOST],
                    "model_dir": str(model_dir),
                    "num_gpus": num_gpus,
                }
            ),
            "TRAINING_JOB_NAME": context.job_name,
        }
    )
    environment.update(
        {f"SM_HP_{key.upper()}": _env_text(value) for key, value in user_hyperparameters.items()}
    )
    environment.update({str(k): str(v) for k, v in paths.map(arguments.get("Environment", {})).items()})
    if "PYTHONPATH" in os.environ:
        environment["PYTHONPATH"] = os.pathsep.join([str(code_dir), os.environ["PYTHONPATH"]])
    else:
        environment["PYTHONPATH"] = str(code_dir)

    if distributed:
        # SageMaker runs torchrun on every host with one process per GPU; locally the instances
        # become `count` processes on this one host.
        launcher = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nnodes",
            "1",
            "--nproc_per_node",
            str(count),
        ]
    else:
        launcher = [sys.executable]
    if count > 1 and not distributed:
        with context.log_path.open("a") as log:
            log.write(f"note: InstanceCount={count} without torch_distributed; local mode runs one copy\n")

    started = time.time()
    try:
        run_logged(
            context.name,
            [*launcher, program, *command_arguments],
            environment=step_environment(environment),
            cwd=code_dir,
            log_path=context.log_path,
            echo=context.echo,
        )
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
        "TrainingJobArn": f"arn:aws:sagemaker:local:000000000000:training-job/{context.job_name}",
        "TrainingJobStatus": "Completed",
        "ModelArtifacts": {"S3ModelArtifacts": model_uri},
        "TrainingTimeInSeconds": int(ended - started),
        "BillableTimeInSeconds": int(ended - started),
        "FinalMetricDataList": final_metrics(
            arguments.get("AlgorithmSpecification", {}).get("MetricDefinitions", []),
            log_tail(context.log_path, 10_000),
        ),
    }


def _env_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


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
