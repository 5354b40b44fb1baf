"""The rendered monitoring pipeline: golden snapshot, determinism, API validity, and agreement
between the arguments the definition passes and the arguments the scripts accept."""

from __future__ import annotations

import json
import re

import pytest
from cdk_helpers import project_context

from contract.naming import Names
from contract.settings import load_environment
from pipeline_code.container.dogbreeds_jobs.monitoring import monitor_data_quality, monitor_model_quality
from pipeline_code.definition_checks import iter_steps, unresolved_references, validate_step_arguments
from pipeline_code.monitoring_pipeline import (
    DATA_QUALITY_STEP,
    MODEL_QUALITY_STEP,
    render_monitoring_pipeline,
)
from stacks.constructs.training_pipeline import placeholder_locations

SCRIPTS = {DATA_QUALITY_STEP: monitor_data_quality, MODEL_QUALITY_STEP: monitor_model_quality}


def _render(env: str = "dev", **overrides) -> str:
    _, settings = load_environment(project_context(), env)
    monitoring = settings.monitoring.model_copy(update=overrides) if overrides else settings.monitoring
    return render_monitoring_pipeline(placeholder_locations(), monitoring, Names("dogbreeds", env))


@pytest.fixture(scope="module")
def definition() -> dict:
    return json.loads(_render())




def test_rendering_is_deterministic_and_takes_the_whole_environment_settings_too():
    _, settings = load_environment(project_context(), "dev")
    whole = render_monitoring_pipeline(placeholder_locations(), settings, Names("dogbreeds", "dev"))
    assert _render() == _render() == whole


def test_no_timestamps_or_random_names(definition):
    text = json.dumps({k: v for k, v in definition.items() if k != "Version"})
    assert not re.search(r"20\d\d-\d\d-\d\d", text)
    assert not re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-", text)


def test_every_step_is_a_valid_api_request_and_every_reference_resolves(definition):
    assert validate_step_arguments(definition) == []
    assert unresolved_references(definition) == []


def test_two_parallel_cpu_steps_without_network_isolation(definition):
    steps = list(iter_steps(definition))
    assert [s["Name"] for s in steps] == [DATA_QUALITY_STEP, MODEL_QUALITY_STEP]
    for step in steps:
        args = step["Arguments"]
        assert step["Type"] == "Processing" and "DependsOn" not in step
        # The jobs call SageMaker, CloudWatch and S3 themselves.
        assert args["NetworkConfig"]["EnableNetworkIsolation"] is False
        assert args["ProcessingResources"]["ClusterConfig"]["InstanceType"] == {
            "Get": "Parameters.MonitoringInstanceType"
        }
        assert (
            args["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"]
            == placeholder_locations().kms_key_id
        )
        assert (
            args["AppSpecification"]["ContainerArguments"][1]
            == f"monitor_{step['Name'][:-7].lower()}_quality.py"
        )
        window_end = args["AppSpecification"]["ContainerArguments"].index("--window-end") + 1
        assert args["AppSpecification"]["ContainerArguments"][window_end] == {
            "Get": "Execution.StartDateTime"
        }


def test_parameters_carry_names_and_settings():
    definition = json.loads(_render(psi_threshold=0.35, accuracy_threshold=0.8, instance_type="ml.m5.xlarge"))
    params = {p["Name"]: p.get("DefaultValue") for p in definition["Parameters"]}
    names = Names("dogbreeds", "dev")
    bucket = placeholder_locations().bucket
    assert params["EndpointName"] == names.endpoint
    assert params["CaptureS3Uri"] == f"s3://{bucket}/capture/{names.endpoint}"
    assert params["GroundTruthS3Uri"] == f"s3://{bucket}/ground-truth/{names.endpoint}"
    assert params["MonitoringS3Uri"] == f"s3://{bucket}/monitoring/{names.endpoint}"
    assert params["BaselineS3Uri"] == "" and params["WindowEnd"] == ""
    assert params["MetricsSink"] == "cloudwatch" and params["WindowHours"] == 1
    assert params["PsiThreshold"] == 0.35 and params["AccuracyThreshold"] == 0.8
    assert params["MonitoringInstanceType"] == "ml.m5.xlarge"
    assert names.monitoring_pipeline == "dogbreeds-dev-monitoring"


# What SageMaker's execution ids look like (the last part of a PipelineExecutionArn).
EXECUTION_ID = "4r8kqqm2nx7v"


def _resolve(value, parameters: dict[str, object]) -> str:
    """Turn a pipeline expression into the string the job would receive (parameter defaults)."""
    if isinstance(value, str):
        return value
    if "Get" in value:
        reference = value["Get"]
        if reference == "Execution.StartDateTime":
            return "2026-11-27T10:07:03.123Z"
        if reference == "Execution.PipelineExecutionId":
            return EXECUTION_ID
        return str(parameters[reference.removeprefix("Parameters.")])
    join = value["Std:Join"]
    return join["On"].join(_resolve(v, parameters) for v in join["Values"])


def test_the_scripts_accept_exactly_the_arguments_the_definition_passes(definition):
    parameters = {p["Name"]: p.get("DefaultValue") for p in definition["Parameters"]}
    for step in iter_steps(definition):
        _bundle, script, *arguments = [
            _resolve(v, parameters) for v in step["Arguments"]["AppSpecification"]["ContainerArguments"]
        ]
        module = SCRIPTS[step["Name"]]
        assert script == module.__name__.rsplit(".", 1)[-1] + ".py"
        args = module.parse_args(arguments)  # argparse exits on an unknown or malformed argument
        assert args.metrics_namespace == "dogbreeds/dev"
        assert args.model_package_group == Names("dogbreeds", "dev").model_package_group
        assert args.output_uri.endswith(
            "/" + ("data_quality" if step["Name"] == DATA_QUALITY_STEP else "model_quality")
        )
        assert args.window_hours == 1 and args.baseline_uri == ""
        # Each execution writes its reports to its own folder.
        assert args.run_id == EXECUTION_ID
