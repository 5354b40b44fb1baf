"""The pipeline definition JSON (Version 2020-12-01) as typed objects, checked before anything runs.

Checking up front (step types, references, parameter overrides, cycles) means a mistake costs a
clear message instead of a half-finished run with some steps' outputs already written.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from dogbreeds.local_executor.errors import DefinitionError

SUPPORTED_VERSION = "2020-12-01"
PARAMETER_TYPES = ("String", "Integer", "Float", "Boolean")
EXECUTION_VARIABLES = (
    "PipelineExecutionId",
    "PipelineExecutionArn",
    "PipelineName",
    "PipelineArn",
    "StartDateTime",
    "CurrentDateTime",
)


@dataclass(frozen=True)
class Parameter:
    """One pipeline parameter: its declared type, default and (optional) allowed values."""

    name: str
    type: str
    default: Any = None
    enum_values: tuple[Any, ...] | None = None

    def coerce(self, value: Any) -> Any:
        """Check `value` against the declared type; strings (from a command line) are parsed.

        SageMaker rejects a start request whose parameter value does not fit the type, so an
        override that would only fail deep inside a step is refused here instead.
        """
        try:
            coerced = _coerce(self.type, value)
        except (TypeError, ValueError):
            raise DefinitionError(
                f"parameter {self.name!r} is {self.type}; {value!r} is not a valid {self.type}"
                + (" (use true or false)" if self.type == "Boolean" else "")
            ) from None
        if self.enum_values is not None and coerced not in self.enum_values:
            allowed = ", ".join(repr(v) for v in self.enum_values)
            raise DefinitionError(f"parameter {self.name!r} must be one of {allowed}; got {value!r}")
        return coerced


def _coerce(type_name: str, value: Any) -> Any:
    if type_name == "String":
        if isinstance(value, bool | int | float) and not isinstance(value, str):
            return json.dumps(value)
        if not isinstance(value, str):
            raise TypeError
        return value
    if type_name == "Integer":
        if isinstance(value, bool):
            raise TypeError
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            return int(value.strip())
        raise TypeError
    if type_name == "Float":
        if isinstance(value, bool):
            raise TypeError
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            return float(value.strip())
        raise TypeError
    if type_name == "Boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise ValueError
    raise TypeError


@dataclass(frozen=True)
class Step:
    """One step of any type; `branch_of` names the Condition step whose branch holds it."""

    name: str
    type: str
    arguments: dict[str, Any]
    depends_on: tuple[str, ...] = ()
    cache_enabled: bool = False
    cache_expire_after: str | None = None
    property_files: tuple[dict[str, str], ...] = ()
    branch_of: tuple[str, str] | None = None  # (condition step name, "IfSteps" | "ElseSteps")
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class PipelineDefinition:
    """Parameters and a flat, dependency-ordered list of steps (branch steps included)."""

    parameters: dict[str, Parameter]
    steps: dict[str, Step]
    order: tuple[str, ...]
    dependencies: dict[str, frozenset[str]]

    def resolve_parameters(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults overlaid with `overrides`, each checked against its parameter's type."""
        overrides = check_overrides(self.parameters, overrides)
        values: dict[str, Any] = {}
        for name, parameter in self.parameters.items():
            if name in overrides:
                values[name] = overrides[name]
            elif parameter.default is not None:
                values[name] = parameter.coerce(parameter.default)
            else:
                raise DefinitionError(
                    f"parameter {name!r} has no default value; pass it with --param {name}=..."
                )
        return values


def check_overrides(
    parameters: Mapping[str, Parameter], overrides: Mapping[str, Any] | None
) -> dict[str, Any]:
    """`overrides` checked against `parameters`: unknown names and ill-typed values are refused."""
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(parameters))
    if unknown:
        raise DefinitionError(
            f"unknown parameter(s) {', '.join(unknown)}; this pipeline has: " + ", ".join(sorted(parameters))
        )
    return {name: parameters[name].coerce(value) for name, value in overrides.items()}


def parse_parameters(document: Mapping[str, Any]) -> dict[str, Parameter]:
    """The declared parameters of a definition document, without checking its steps."""
    return {p["Name"]: _parse_parameter(p) for p in document.get("Parameters", [])}


def parse_definition(
    definition: str | Mapping[str, Any], step_types: Collection[str] | None = None
) -> PipelineDefinition:
    """Parse and check a definition before anything runs.

    `step_types` names the types a step may have (the executor passes the ones it runs); a step of
    any other type is refused. None leaves step types unchecked.
    """
    document = json.loads(definition) if isinstance(definition, str) else dict(definition)
    version = document.get("Version")
    if version != SUPPORTED_VERSION:
        raise DefinitionError(f"definition Version is {version!r}; only {SUPPORTED_VERSION!r} is supported")
    parameters = parse_parameters(document)
    steps: dict[str, Step] = {}
    for raw, branch_of in _walk_steps(document.get("Steps", []), None):
        if step_types is not None:
            check_step_type(raw.get("Name"), raw.get("Type"), step_types)
        step = _parse_step(raw, branch_of)
        if step.name in steps:
            raise DefinitionError(f"two steps are named {step.name!r}; step names must be unique")
        steps[step.name] = step
    if not steps:
        raise DefinitionError("the definition has no steps")
    _check_references(document, parameters, steps)
    dependencies = {name: _dependencies_of(step) for name, step in steps.items()}
    order = _topological_order(steps, dependencies)
    return PipelineDefinition(parameters=parameters, steps=steps, order=order, dependencies=dependencies)


def _parse_parameter(raw: Mapping[str, Any]) -> Parameter:
    name, type_name = raw.get("Name"), raw.get("Type", "String")
    if type_name not in PARAMETER_TYPES:
        raise DefinitionError(
            f"parameter {name!r} has type {type_name!r}; supported types: {', '.join(PARAMETER_TYPES)}"
        )
    enum_values = raw.get("EnumValues")
    return Parameter(
        name=name,
        type=type_name,
        default=raw.get("DefaultValue"),
        enum_values=tuple(enum_values) if enum_values is not None else None,
    )


def check_step_type(name: str, type_name: str, supported: Collection[str]) -> None:
    """Refuse a step whose type is not one of `supported`, naming the step, its type and those."""
    supported = tuple(supported)
    if type_name not in supported:
        raise DefinitionError(
            f"step {name!r} has type {type_name!r}, which the local executor does not run; "
            f"supported step types: {', '.join(supported)}"
        )


def _walk_steps(
    raw_steps: list[dict[str, Any]], branch_of: tuple[str, str] | None
) -> Iterator[tuple[dict[str, Any], tuple[str, str] | None]]:
    for raw in raw_steps:
        yield raw, branch_of
        if raw.get("Type") == "Condition":
            arguments = raw.get("Arguments", {})
            for branch in ("IfSteps", "ElseSteps"):
                yield from _walk_steps(arguments.get(branch, []), (raw["Name"], branch))


def _parse_step(raw: dict[str, Any], branch_of: tuple[str, str] | None) -> Step:
    name, type_name = raw.get("Name"), raw.get("Type")
    arguments = dict(raw.get("Arguments", {}))
    if type_name == "Condition":
        # Branch steps are steps of their own; the condition keeps only their names.
        for branch in ("IfSteps", "ElseSteps"):
            arguments[branch] = [s["Name"] for s in arguments.get(branch, [])]
    cache = raw.get("CacheConfig") or {}
    return Step(
        name=name,
        type=type_name,
        arguments=arguments,
        depends_on=tuple(raw.get("DependsOn", [])),
        cache_enabled=bool(cache.get("Enabled", False)),
        cache_expire_after=cache.get("ExpireAfter"),
        property_files=tuple(raw.get("PropertyFiles", [])),
        branch_of=branch_of,
        raw=raw,
    )


def iter_gets(value: Any) -> Iterator[str]:
    """Every `Get` reference string anywhere inside a JSON value."""
    if isinstance(value, dict):
        if set(value) == {"Get"} and isinstance(value["Get"], str):
            yield value["Get"]
            return
        for item in value.values():
            yield from iter_gets(item)
    elif isinstance(value, list):
        for item in value:
            yield from iter_gets(item)


def referenced_step(reference: str) -> str | None:
    """The step a `Get` reference reads from (`Steps.<name>...`), or None for parameters/variables."""
    if not reference.startswith("Steps."):
        return None
    rest = reference[len("Steps.") :]
    # Step names may contain '-' (ModelStep appends '-RegisterModel') but not '.' or '['.
    end = min((i for i in (rest.find("."), rest.find("[")) if i >= 0), default=len(rest))
    return rest[:end]


def _dependencies_of(step: Step) -> frozenset[str]:
    found = {referenced_step(ref) for ref in iter_gets(step.arguments)}
    found |= {referenced_step(ref) for ref in iter_gets(list(step.property_files))}
    found.discard(None)
    found |= set(step.depends_on)
    if step.branch_of:
        found.add(step.branch_of[0])
    found.discard(step.name)
    return frozenset(found)  # type: ignore[arg-type]


def _check_references(
    document: Mapping[str, Any], parameters: Mapping[str, Parameter], steps: Mapping[str, Step]
) -> None:
    for step in steps.values():
        for ref in iter_gets(step.arguments):
            _check_reference(step.name, ref, parameters, steps)
        for dependency in step.depends_on:
            if dependency not in steps:
                raise DefinitionError(
                    f"step {step.name!r} DependsOn {dependency!r}, which is not a step of this pipeline"
                )


def _check_reference(
    step_name: str, ref: str, parameters: Mapping[str, Parameter], steps: Mapping[str, Step]
) -> None:
    head, _, rest = ref.partition(".")
    if head == "Parameters":
        if rest not in parameters:
            raise DefinitionError(f"step {step_name!r} reads parameter {rest!r}, which is not declared")
    elif head == "Execution":
        if rest not in EXECUTION_VARIABLES:
            raise DefinitionError(
                f"step {step_name!r} reads execution variable {rest!r}; "
                f"known: {', '.join(EXECUTION_VARIABLES)}"
            )
    elif head == "Steps":
        target = referenced_step(ref)
        if target not in steps:
            raise DefinitionError(f"step {step_name!r} reads {ref!r}, but there is no step {target!r}")
    else:
        raise DefinitionError(
            f"step {step_name!r} has a Get of {ref!r}; "
            "references start with Parameters., Execution. or Steps."
        )


def _topological_order(
    steps: Mapping[str, Step], dependencies: Mapping[str, frozenset[str]]
) -> tuple[str, ...]:
    # Kahn's algorithm, ties broken by definition order so runs are reproducible.
    position = {name: i for i, name in enumerate(steps)}
    remaining = {name: set(deps) for name, deps in dependencies.items()}
    order: list[str] = []
    while remaining:
        ready = sorted((n for n, deps in remaining.items() if not deps), key=position.__getitem__)
        if not ready:
            cycle = ", ".join(_cycle_members(remaining))
            raise DefinitionError(f"steps depend on each other in a cycle: {cycle}")
        chosen = ready[0]
        order.append(chosen)
        del remaining[chosen]
        for deps in remaining.values():
            deps.discard(chosen)
    return tuple(order)


def _cycle_members(remaining: dict[str, set[str]]) -> list[str]:
    # Drop steps nothing left depends on, until only the steps on a cycle remain.
    members = {name: set(deps) for name, deps in remaining.items()}
    while True:
        needed = set().union(*members.values())
        leaves = [name for name in members if name not in needed]
        if not leaves:
            return sorted(members)
        for name in leaves:
            del members[name]
