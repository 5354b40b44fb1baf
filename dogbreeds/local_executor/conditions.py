"""Evaluate a Condition step's conditions (all the Condition* types the sagemaker SDK emits)."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

from dogbreeds.local_executor.errors import DefinitionError
from dogbreeds.local_executor.expressions import ExpressionError

_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "Equals": operator.eq,
    "GreaterThan": operator.gt,
    "GreaterThanOrEqualTo": operator.ge,
    "LessThan": operator.lt,
    "LessThanOrEqualTo": operator.le,
}
CONDITION_TYPES = (*_COMPARISONS, "In", "Not", "Or")


def check_conditions(name: str, arguments: Mapping[str, Any]) -> None:
    """Refuse, before the run starts, a condition type this module cannot evaluate."""

    def walk(condition: Mapping[str, Any]) -> None:
        kind = condition.get("Type")
        if kind not in CONDITION_TYPES:
            raise DefinitionError(
                f"Condition step {name!r} uses condition type {kind!r}; "
                f"supported: {', '.join(CONDITION_TYPES)}"
            )
        if kind == "Not":
            walk(condition["Condition"])
        for inner in condition.get("Conditions", []) if kind == "Or" else []:
            walk(inner)

    for condition in arguments.get("Conditions", []):
        walk(condition)


def evaluate_all(conditions: list[Mapping[str, Any]], resolve: Callable[[Any], Any]) -> bool:
    """A ConditionStep's list is a conjunction: every condition must hold."""
    return all(evaluate(condition, resolve) for condition in conditions)


def evaluate(condition: Mapping[str, Any], resolve: Callable[[Any], Any]) -> bool:
    kind = condition.get("Type")
    if kind in _COMPARISONS:
        left, right = resolve(condition.get("LeftValue")), resolve(condition.get("RightValue"))
        return _compare(kind, left, right)
    if kind == "In":
        query = resolve(condition.get("QueryValue"))
        return any(_compare("Equals", query, resolve(value)) for value in condition.get("Values", []))
    if kind == "Not":
        return not evaluate(condition["Condition"], resolve)
    if kind == "Or":
        return any(evaluate(inner, resolve) for inner in condition.get("Conditions", []))
    raise DefinitionError(
        f"condition type {kind!r} is not supported; supported: {', '.join(CONDITION_TYPES)}"
    )


def _compare(kind: str, left: Any, right: Any) -> bool:
    # Numbers compare as numbers even when one side arrived as text (JsonGet of "0.9", a Join).
    left_number, right_number = _as_number(left), _as_number(right)
    if (
        left_number is not None
        and right_number is not None
        and (_is_number(left) or _is_number(right) or kind != "Equals")
    ):
        return _COMPARISONS[kind](left_number, right_number)
    if kind == "Equals":
        return left == right
    if isinstance(left, str) and isinstance(right, str):
        return _COMPARISONS[kind](left, right)
    raise ExpressionError(
        f"cannot compare {left!r} {kind} {right!r}: both sides must be numbers or both text"
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _as_number(value: Any) -> float | None:
    if _is_number(value):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None
