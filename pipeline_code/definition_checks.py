"""Checks on a rendered pipeline definition that do not need AWS.

AWS's published pipeline-definition JSON Schema is stale (it rejects fields the SDK emits and the
service accepts), so each step's Arguments are validated against botocore's own service model of the
API call the step makes, after pipeline expressions are replaced by placeholders of the member's
type. References are checked too: every Get must name a parameter, a step, an execution variable
or a property file that the definition defines.
"""

from __future__ import annotations

import re
from typing import Any

import botocore.session
from botocore.model import Shape
from botocore.validate import ParamValidator

# Step type -> (API call it makes, placeholder values for members the SDK pops out because the
# service fills them in at execution time).
STEP_API = {
    "Processing": ("CreateProcessingJob", {"ProcessingJobName": "pipeline-step"}),
    "Training": ("CreateTrainingJob", {"TrainingJobName": "pipeline-step"}),
    "RegisterModel": ("CreateModelPackage", {}),
    "Model": ("CreateModel", {"ModelName": "pipeline-step"}),
}
EXPRESSION_KEYS = ("Get", "Std:Join", "Std:JsonGet")
EXECUTION_VARIABLES = {
    "Execution.PipelineExecutionId",
    "Execution.PipelineExecutionArn",
    "Execution.PipelineName",
    "Execution.PipelineArn",
    "Execution.StartDateTime",
    "Execution.CurrentDateTime",
}


def _is_expression(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in EXPRESSION_KEYS


def _placeholder(shape: Shape) -> Any:
    return {
        "string": "placeholder",
        "integer": 1,
        "long": 1,
        "float": 1.0,
        "double": 1.0,
        "boolean": True,
        "timestamp": "2026-01-01T00:00:00Z",
    }.get(shape.type_name, "placeholder")


def _substitute(value: Any, shape: Shape | None) -> Any:
    """Replace pipeline expressions by placeholders typed after the botocore member shape."""
    if shape is None:
        return value
    if _is_expression(value):
        return _placeholder(shape)
    if shape.type_name == "structure" and isinstance(value, dict):
        return {k: _substitute(v, shape.members.get(k)) for k, v in value.items()}
    if shape.type_name == "list" and isinstance(value, list):
        return [_substitute(v, shape.member) for v in value]
    if shape.type_name == "map" and isinstance(value, dict):
        return {k: _substitute(v, shape.value) for k, v in value.items()}
    return value


def validate_step_arguments(definition: dict[str, Any]) -> list[str]:
    """Problems with any step's Arguments, as botocore's validator words them (empty if none)."""
    model = botocore.session.get_session().get_service_model("sagemaker")
    validator = ParamValidator()
    problems: list[str] = []
    for step in iter_steps(definition):
        if step["Type"] not in STEP_API:
            continue
        operation, popped = STEP_API[step["Type"]]
        shape = model.operation_model(operation).input_shape
        arguments = {**popped, **_substitute(step["Arguments"], shape)}
        report = validator.validate(arguments, shape)
        if report.has_errors():
            problems.append(f"step {step['Name']} ({operation}): {report.generate_report()}")
    return problems


def iter_steps(definition: dict[str, Any]):
    """Every step, including those nested in a Condition's branches."""
    pending = list(definition["Steps"])
    while pending:
        step = pending.pop(0)
        yield step
        if step["Type"] == "Condition":
            pending += step["Arguments"].get("IfSteps", []) + step["Arguments"].get("ElseSteps", [])


def _walk(value: Any):
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


def unresolved_references(definition: dict[str, Any]) -> list[str]:
    """Get / JsonGet references that name nothing the definition defines."""
    parameters = {p["Name"] for p in definition.get("Parameters", [])}
    steps = {step["Name"]: step for step in iter_steps(definition)}
    property_files = {
        (name, pf["PropertyFileName"])
        for name, step in steps.items()
        for pf in step.get("PropertyFiles", [])
    }
    problems = []
    for node in _walk(definition):
        if "Get" in node and isinstance(node["Get"], str):
            reference = node["Get"]
            kind, _, rest = reference.partition(".")
            if kind == "Parameters" and rest not in parameters:
                problems.append(f"{reference}: no parameter {rest!r}")
            elif kind == "Steps" and re.split(r"[.\[]", rest)[0] not in steps:
                problems.append(f"{reference}: no step {re.split(r'[.[]', rest)[0]!r}")
            elif kind == "Execution" and reference not in EXECUTION_VARIABLES:
                problems.append(f"{reference}: unknown execution variable")
            elif kind not in ("Parameters", "Steps", "Execution"):
                problems.append(f"{reference}: unknown reference kind {kind!r}")
        if "Std:JsonGet" in node:
            file_ref = node["Std:JsonGet"]["PropertyFile"]["Get"]
            match = re.fullmatch(r"Steps\.([^.]+)\.PropertyFiles\.(.+)", file_ref)
            if not match or (match.group(1), match.group(2)) not in property_files:
                problems.append(f"JsonGet {file_ref}: no such property file")
    for name, step in steps.items():
        for dependency in step.get("DependsOn", []):
            if dependency not in steps:
                problems.append(f"step {name} depends on unknown step {dependency!r}")
    return problems


def _single_object_inputs(step: dict[str, Any]) -> dict[str, str]:
    """Container folder -> the file SageMaker puts there, for inputs whose URI is a literal object.

    SageMaker downloads an ``S3Prefix`` input whose URI names one object to
    ``<LocalPath>/<last part of the key>`` (for a training channel, LocalPath is
    ``/opt/ml/input/data/<channel>``). Only literal URIs (code assets) are known before a run.
    """
    arguments = step["Arguments"]
    placed: dict[str, str] = {}
    for item in arguments.get("ProcessingInputs", []):
        uri = item.get("S3Input", {}).get("S3Uri")
        if isinstance(uri, str) and not uri.endswith("/"):
            placed[item["S3Input"]["LocalPath"].rstrip("/")] = uri.rsplit("/", 1)[-1]
    for channel in arguments.get("InputDataConfig", []):
        uri = channel.get("DataSource", {}).get("S3DataSource", {}).get("S3Uri")
        if isinstance(uri, str) and not uri.endswith("/"):
            placed[f"/opt/ml/input/data/{channel['ChannelName']}"] = uri.rsplit("/", 1)[-1]
    return placed


def code_placement_problems(definition: dict[str, Any]) -> list[str]:
    """Every container path a step runs its code from must be where SageMaker puts that code.

    Checks the processing entry point and arguments, and a training job's
    ``sagemaker_submit_directory``, against the inputs' object names: a path into an input folder
    must name the file that input delivers.
    """
    problems = []
    for step in iter_steps(definition):
        placed = _single_object_inputs(step)
        arguments = step["Arguments"]
        app = arguments.get("AppSpecification", {})
        paths = [*app.get("ContainerEntrypoint", []), *app.get("ContainerArguments", [])]
        submit = arguments.get("HyperParameters", {}).get("sagemaker_submit_directory")
        if isinstance(submit, str):
            paths.append(submit.strip('"'))
        for path in (p for p in paths if isinstance(p, str)):
            folder, _, name = path.rpartition("/")
            if folder in placed and name != placed[folder]:
                problems.append(
                    f"step {step['Name']!r} runs {path}, but SageMaker puts that input at "
                    f"{folder}/{placed[folder]} (the object's own key name)"
                )
    return problems
