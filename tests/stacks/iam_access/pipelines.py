"""A SageMaker pipeline definition evaluated for one example execution.

Pipeline expressions become concrete values: ``Parameters.X`` its default (or the value a schedule
passes), ``Execution.*`` an example execution, a step's output property the value that step's
arguments give it, ``Steps.<training step>.ModelArtifacts.S3ModelArtifacts`` where SageMaker puts
the model (``<S3OutputPath>/<job name>/output/model.tar.gz``). An expression this module does not
know raises, so a new kind of step input is never silently skipped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

EXAMPLE_EXECUTION_ID = "a1b2c3d4e5f6"
EXAMPLE_START_TIME = "2026-11-27T10:07:00Z"
# SageMaker Pipelines names a step's job pipelines-<execution id>-<step name>-<random suffix>.
JOB_SUFFIX = "Ab12Cd34Ef"

_OUTPUT = re.compile(r"^Steps\.([^.]+)\.ProcessingOutputConfig\.Outputs\['([^']+)'\]\.S3Output\.S3Uri$")
_MODEL_ARTIFACTS = re.compile(r"^Steps\.([^.]+)\.ModelArtifacts\.S3ModelArtifacts$")


class UnresolvableError(ValueError):
    """The definitions or templates use something the access derivation does not model."""


@dataclass(frozen=True)
class Step:
    name: str
    type: str
    arguments: dict[str, Any]
    raw: dict[str, Any]


class PipelineRun:
    """One execution of ``definition`` (a PipelineDefinitionBody string) with ``overrides``."""

    def __init__(self, name: str, definition: str, overrides: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.document = json.loads(definition)
        self.parameters = {p["Name"]: p.get("DefaultValue") for p in self.document.get("Parameters", [])}
        unknown = set(overrides or {}) - set(self.parameters)
        if unknown:
            raise UnresolvableError(f"{name}: parameters {sorted(unknown)} are not declared")
        self.parameters.update(overrides or {})
        self.steps = {step.name: step for step in _flatten(self.document.get("Steps", []))}

    def job_name(self, step_name: str) -> str:
        return f"pipelines-{EXAMPLE_EXECUTION_ID}-{step_name}-{JOB_SUFFIX}"

    def value(self, node: Any) -> Any:
        """``node`` with every pipeline expression replaced by its value for this execution."""
        if isinstance(node, list):
            return [self.value(item) for item in node]
        if not isinstance(node, dict):
            return node
        if set(node) == {"Get"}:
            return self._get(node["Get"])
        if set(node) == {"Std:Join"}:
            join = node["Std:Join"]
            return join["On"].join(_text(self.value(v)) for v in join["Values"])
        if set(node) == {"Std:JsonGet"}:
            raise UnresolvableError(f"{self.name}: a JsonGet value is only known at run time: {node}")
        return {key: self.value(value) for key, value in node.items()}

    def _get(self, path: str) -> Any:
        if path.startswith("Parameters."):
            return self.parameters[path.removeprefix("Parameters.")]
        if path == "Execution.PipelineExecutionId":
            return EXAMPLE_EXECUTION_ID
        if path == "Execution.StartDateTime":
            return EXAMPLE_START_TIME
        if path == "Execution.PipelineName":
            return self.name
        if match := _OUTPUT.match(path):
            step, output = match.groups()
            outputs = self.steps[step].arguments["ProcessingOutputConfig"]["Outputs"]
            [found] = [o for o in outputs if o["OutputName"] == output]
            return self.value(found["S3Output"]["S3Uri"])
        if match := _MODEL_ARTIFACTS.match(path):
            step = match.group(1)
            output_path = self.value(self.steps[step].arguments["OutputDataConfig"]["S3OutputPath"])
            return f"{output_path.rstrip('/')}/{self.job_name(step)}/output/model.tar.gz"
        raise UnresolvableError(f"{self.name}: pipeline expression Get {path!r} is not modelled")

    def property_file(self, reference: dict[str, Any]) -> tuple[str, str]:
        """(step name, S3 URI of the file) for a ``{"Get": "Steps.X.PropertyFiles.Y"}`` reference."""
        path = reference["Get"]
        match = re.match(r"^Steps\.([^.]+)\.PropertyFiles\.([^.]+)$", path)
        if not match:
            raise UnresolvableError(f"{self.name}: {path} is not a property file reference")
        step, file_name = match.groups()
        [spec] = [
            p for p in self.steps[step].raw.get("PropertyFiles", []) if p["PropertyFileName"] == file_name
        ]
        outputs = self.steps[step].arguments["ProcessingOutputConfig"]["Outputs"]
        [output] = [o for o in outputs if o["OutputName"] == spec["OutputName"]]
        return step, f"{self.value(output['S3Output']['S3Uri']).rstrip('/')}/{spec['FilePath']}"


def _flatten(steps: list[dict[str, Any]]) -> Iterator[Step]:
    for step in steps:
        yield Step(step["Name"], step["Type"], step.get("Arguments", {}), step)
        if step["Type"] == "Condition":
            yield from _flatten(step["Arguments"].get("IfSteps", []))
            yield from _flatten(step["Arguments"].get("ElseSteps", []))


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def json_gets(node: Any) -> Iterator[dict[str, Any]]:
    """Every ``Std:JsonGet`` expression inside ``node``."""
    if isinstance(node, dict):
        if set(node) == {"Std:JsonGet"}:
            yield node["Std:JsonGet"]
        for value in node.values():
            yield from json_gets(value)
    elif isinstance(node, list):
        for item in node:
            yield from json_gets(item)
