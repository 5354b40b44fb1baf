"""Resolve pipeline expressions (Get, Std:Join, Std:JsonGet) to plain JSON values.

The same resolver serves step arguments, conditions and the Fail message, so a value means the
same thing wherever the definition uses it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dogbreeds.local_executor.definition import referenced_step
from dogbreeds.local_executor.errors import DefinitionError, LocalExecutorError

# A property path after the step name: `.Name`, `['key']`, `["key"]` or `[0]`.
_PATH_TOKEN = re.compile(
    r"\.([A-Za-z_][A-Za-z0-9_]*)|\[\s*'([^']*)'\s*\]|\[\s*\"([^\"]*)\"\s*\]|\[\s*(-?\d+)\s*\]"
)


class ExpressionError(LocalExecutorError):
    """An expression could not be resolved with the values known at this point of the run."""


@dataclass
class ResolveContext:
    """What expressions can read: parameters, execution variables, finished steps' properties.

    `read_property_file(step, name)` returns the parsed JSON of a property file a finished step
    declared; `read_json_uri(uri)` the parsed JSON at an s3:// URI (JsonGet's S3Uri form).
    """

    parameters: Mapping[str, Any]
    execution: dict[str, Any]  # CurrentDateTime moves on as steps start
    step_properties: Mapping[str, Mapping[str, Any]]
    read_property_file: Callable[[str, str], Any]
    read_json_uri: Callable[[str], Any]


def resolve(value: Any, context: ResolveContext) -> Any:
    """Return `value` with every expression inside it replaced by its value."""
    if isinstance(value, list):
        return [resolve(item, context) for item in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Get"}:
        return resolve_get(value["Get"], context)
    if set(value) == {"Std:Join"}:
        join = value["Std:Join"]
        parts = resolve(join.get("Values", []), context)
        return str(join.get("On", "")).join(to_text(part) for part in parts)
    if set(value) == {"Std:JsonGet"}:
        return _resolve_json_get(value["Std:JsonGet"], context)
    return {key: resolve(item, context) for key, item in value.items()}


def to_text(value: Any) -> str:
    """How a resolved value reads inside a string (Std:Join, hyperparameters, arguments)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def resolve_get(reference: str, context: ResolveContext) -> Any:
    head, _, rest = reference.partition(".")
    if head == "Parameters":
        return context.parameters[rest]
    if head == "Execution":
        return context.execution[rest]
    step = referenced_step(reference)
    if step is None or step not in context.step_properties:
        raise ExpressionError(f"{reference!r} reads step {step!r}, which has not run in this execution")
    path = reference[len("Steps.") + len(step) :]
    return lookup_path(context.step_properties[step], path, reference)


def lookup_path(document: Any, path: str, description: str) -> Any:
    """Follow a property path like `.Outputs['out'].S3Uri` or `.a[0].b` through JSON values.

    A string key on a list selects the element whose `...Name` field equals it, which is how
    SageMaker's property lists (`Outputs['evaluation']`, `FinalMetricDataList['loss']`) work.
    """
    position, current = 0, document
    while position < len(path):
        match = _PATH_TOKEN.match(path, position)
        if not match:
            raise ExpressionError(f"cannot parse the path {path[position:]!r} in {description!r}")
        position = match.end()
        attribute, quoted1, quoted2, index = match.groups()
        key = attribute if attribute is not None else (quoted1 if quoted1 is not None else quoted2)
        try:
            if index is not None:
                current = current[int(index)]
            elif isinstance(current, list):
                current = _select_by_name(current, key)
            else:
                current = current[key]
        except (KeyError, IndexError, TypeError):
            raise ExpressionError(f"{description!r}: nothing at {path[: match.end()]!r}") from None
    return current


def _select_by_name(items: list[Any], key: str) -> Any:
    for item in items:
        if isinstance(item, dict) and any(
            field.endswith("Name") and value == key for field, value in item.items()
        ):
            return item
    raise KeyError(key)


def _resolve_json_get(spec: Mapping[str, Any], context: ResolveContext) -> Any:
    json_path = resolve(spec.get("Path"), context)
    if "PropertyFile" in spec:
        reference = spec["PropertyFile"]
        reference = reference.get("Get") if isinstance(reference, dict) else reference
        step = referenced_step(reference) if isinstance(reference, str) else None
        marker = ".PropertyFiles."
        if step is None or marker not in reference:
            raise DefinitionError(
                f"Std:JsonGet PropertyFile must be Steps.<step>.PropertyFiles.<name>; got {reference!r}"
            )
        if step not in context.step_properties:
            raise ExpressionError(f"Std:JsonGet reads a property file of step {step!r}, which has not run")
        document = context.read_property_file(step, reference.split(marker, 1)[1])
        source = f"property file {reference}"
    elif "S3Uri" in spec:
        uri = resolve(spec["S3Uri"], context)
        document = context.read_json_uri(uri)
        source = uri
    else:
        raise DefinitionError(f"Std:JsonGet needs PropertyFile or S3Uri; got keys {sorted(spec)}")
    path = json_path if json_path.startswith("[") else "." + json_path
    try:
        return lookup_path(document, path, f"Std:JsonGet {json_path}")
    except ExpressionError:
        raise ExpressionError(f"Std:JsonGet found nothing at {json_path!r} in {source}") from None
