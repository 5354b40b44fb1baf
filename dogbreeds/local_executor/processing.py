"""Run a Processing step: stage inputs, run the container entry point, upload outputs."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from dogbreeds.local_executor.errors import DefinitionError
from dogbreeds.local_executor.import_guard import UnknownImageError, guard_environment, image_for
from dogbreeds.local_executor.progress import run_logged, step_environment
from dogbreeds.local_executor.s3_mapping import LOCAL_S3_ROOT_ENV, ContainerPaths
from dogbreeds.local_executor.step_context import StepContext


def check_processing(name: str, arguments: Mapping[str, Any]) -> None:
    """Refuse, before the run starts, the Processing features local mode cannot honour."""
    app = arguments.get("AppSpecification", {})
    if not app.get("ContainerEntrypoint"):
        raise DefinitionError(
            f"Processing step {name!r} has no AppSpecification.ContainerEntrypoint; local mode runs "
            "the entry point itself (there is no image), so the definition must name it "
            "(ScriptProcessor does)"
        )
    check_image(name, app.get("ImageUri"))
    for item in arguments.get("ProcessingInputs", []):
        if "S3Input" not in item:
            raise DefinitionError(
                f"Processing step {name!r} input {item.get('InputName')!r} is not an S3Input "
                "(DatasetDefinition inputs are not supported locally)"
            )
        s3_input = item["S3Input"]
        if s3_input.get("S3DataType", "S3Prefix") != "S3Prefix":
            raise DefinitionError(
                f"Processing step {name!r} input {item.get('InputName')!r} has S3DataType "
                f"{s3_input.get('S3DataType')!r}; local mode supports S3Prefix only"
            )
        if s3_input.get("S3CompressionType", "None") != "None":
            raise DefinitionError(
                f"Processing step {name!r} input {item.get('InputName')!r} has S3CompressionType "
                f"{s3_input.get('S3CompressionType')!r}; local mode supports None only"
            )
    for item in arguments.get("ProcessingOutputConfig", {}).get("Outputs", []):
        if "S3Output" not in item:
            raise DefinitionError(
                f"Processing step {name!r} output {item.get('OutputName')!r} is not an S3Output "
                "(FeatureStoreOutput is not supported locally)"
            )


def check_image(step_name: str, image_uri: Any) -> None:
    """Job code runs with only what its image holds; an image the inventory lacks is refused."""
    if isinstance(image_uri, str):  # a parameter is checked when the step runs
        try:
            image_for(image_uri)
        except UnknownImageError as error:
            raise DefinitionError(f"step {step_name!r}: {error}") from None


def processing_instance_count(arguments: Mapping[str, Any]) -> int:
    count = arguments.get("ProcessingResources", {}).get("ClusterConfig", {}).get("InstanceCount", 1)
    try:
        return max(1, int(count))
    except (TypeError, ValueError):
        raise DefinitionError(
            f"ProcessingResources.ClusterConfig.InstanceCount must be a whole number; got {count!r}"
        ) from None


def run_processing(context: StepContext) -> dict[str, Any]:
    """Run the job and return its properties (DescribeProcessingJob's shape).

    With InstanceCount N > 1 it runs as SageMaker does: N containers (one after another here),
    algo-1..algo-N, each with its own /opt/ml and a resourceconfig.json naming it and all hosts;
    a ShardedByS3Key input gives each host a disjoint share of the objects (FullyReplicated gives
    every host all of them); every host's outputs are uploaded to the same S3 prefixes.
    """
    arguments = context.arguments
    count = processing_instance_count(arguments)
    hosts = [f"algo-{number}" for number in range(1, count + 1)]
    outputs = arguments.get("ProcessingOutputConfig", {}).get("Outputs", [])
    for index, host in enumerate(hosts):
        paths = context.paths if count == 1 else ContainerPaths(context.step_dir / host)
        _run_host(context, paths, host, hosts, index)
        # EndOfJob and Continuous uploads end in the same place once the job is done.
        for item in outputs:
            s3_output = item["S3Output"]
            context.local_s3.upload(paths.local(s3_output["LocalPath"]), s3_output["S3Uri"])
    return {
        **arguments,
        "ProcessingJobName": context.job_name,
        "ProcessingJobArn": f"arn:aws:sagemaker:local:000000000000:processing-job/{context.job_name}",
        "ProcessingJobStatus": "Completed",
    }


def _run_host(context: StepContext, paths: ContainerPaths, host: str, hosts: list[str], index: int) -> None:
    arguments = context.arguments
    for item in arguments.get("ProcessingInputs", []):
        s3_input = item["S3Input"]
        destination = paths.local(s3_input["LocalPath"])
        if s3_input.get("S3DataDistributionType") == "ShardedByS3Key" and len(hosts) > 1:
            context.local_s3.download(s3_input["S3Uri"], destination, shard=(index, len(hosts)))
        else:
            context.local_s3.download(s3_input["S3Uri"], destination)
    for item in arguments.get("ProcessingOutputConfig", {}).get("Outputs", []):
        paths.local(item["S3Output"]["LocalPath"]).mkdir(parents=True, exist_ok=True)

    # SageMaker writes these into every processing container; scripts that are given the
    # (mapped) path read the same host list and job description as on AWS.
    config_dir = paths.opt_ml / "config"
    config_dir.mkdir(parents=True, exist_ok=True)
    resource_config = {"current_host": host, "hosts": hosts}
    (config_dir / "resourceconfig.json").write_text(json.dumps(resource_config))
    job_config = {"ProcessingJobName": context.job_name, **arguments}
    (config_dir / "processingjobconfig.json").write_text(json.dumps(job_config, indent=2))

    app = arguments["AppSpecification"]
    command = [
        str(part)
        for part in paths.map(list(app["ContainerEntrypoint"]) + list(app.get("ContainerArguments", [])))
    ]
    environment = {key: str(value) for key, value in paths.map(arguments.get("Environment", {})).items()}
    # Jobs that read or write S3 themselves (the monitors stream capture and write dated reports)
    # get s3:// URIs in their arguments; this tells them which folder is S3 here.
    environment[LOCAL_S3_ROOT_ENV] = str(context.local_s3.root)
    # Only what the step's image holds is importable by the job's code (see import_guard.py).
    guarded = guard_environment(app["ImageUri"], step_environment(environment))
    run_logged(
        context.name if len(hosts) == 1 else f"{context.name} ({host})",
        command,
        environment=guarded,
        cwd=context.step_dir,
        log_path=context.log_path,
        echo=context.echo,
    )
