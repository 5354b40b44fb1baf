"""What the alarms' state changes set off, locally: EventBridge rules, the retrain guard, alarm actions.

On AWS a state change is an event ("CloudWatch Alarm State Change", source aws.cloudwatch) on the
default bus; the monitoring stack's rule sends drift and quality alarms' changes into ALARM to the
retrain guard Lambda, which decides whether to start the training pipeline. Locally the same event
is built in CloudWatch's documented shape, matched against the synthesised rules' event patterns,
and the guard's deployed code (the Lambda's code asset from the assembly, with the function's
environment) decides, against this work folder's local executions of the training pipeline. It
decides only: ``start_pipeline_execution`` is recorded as "would start", never run, so a monitor run
does not turn into a training run by surprise.
"""

from __future__ import annotations

import contextlib
import io
import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from contract.events import ALARM_STATE_CHANGE, CLOUDWATCH_SOURCE
from dogbreeds.cloud_assembly import CloudAssembly, Resource
from dogbreeds.local_alarms import ALARM_TYPE, AlarmDefinition, AlarmEvaluationError, Evaluation
from pipeline_code.container.dogbreeds_jobs.isolated_import import import_isolated

RULE_TYPE = "AWS::Events::Rule"
FUNCTION_TYPE = "AWS::Lambda::Function"
WOULD_START = "would-start"


def alarm_definitions(assembly: CloudAssembly) -> list[AlarmDefinition]:
    """Every metric alarm the environment's stacks create, sorted by name."""
    alarms = [
        AlarmDefinition.from_properties(resource.properties, arn=assembly.get_att(resource, "Arn"))
        for resource in assembly.resources(ALARM_TYPE)
    ]
    return sorted(alarms, key=lambda alarm: alarm.name)


def state_change_event(evaluation: Evaluation, account: str, region: str) -> dict[str, Any]:
    """The EventBridge event CloudWatch sends for a state change (documented shape)."""
    when = (evaluation.at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    alarm = evaluation.alarm
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": ALARM_STATE_CHANGE,
        "source": CLOUDWATCH_SOURCE,
        "account": account,
        "time": when,
        "region": region,
        "resources": [alarm.arn],
        "detail": {
            "alarmName": alarm.name,
            "state": {"value": evaluation.state, "reason": evaluation.reason, "timestamp": when},
            "previousState": {"value": evaluation.previous},
            "configuration": {"description": alarm.description},
        },
    }


def pattern_matches(pattern: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """EventBridge matching for exact-value patterns: every key of the pattern must be in the event,
    a list matches if the event's value (or any item of an event list) is in it. Content filters
    (prefix, numeric, anything-but, ...) raise: a rule is never matched on a guess."""
    for key, expected in pattern.items():
        if key not in event:
            return False
        actual = event[key]
        if isinstance(expected, Mapping):
            if not isinstance(actual, Mapping) or not pattern_matches(expected, actual):
                return False
            continue
        if not isinstance(expected, list):
            raise AlarmEvaluationError(f"event pattern value for {key!r} must be a list or an object")
        if any(isinstance(item, Mapping) for item in expected):
            raise AlarmEvaluationError(f"event pattern for {key!r} uses a content filter: {expected}")
        values = actual if isinstance(actual, list) else [actual]
        if not any(value in expected for value in values):
            return False
    return True


@dataclass
class LocalPipelineExecutions:
    """The two SageMaker calls the retrain guard makes, answered from local execution records."""

    workdir: Path
    region: str
    account: str
    started: list[dict[str, Any]] = field(default_factory=list)

    def get_paginator(self, operation: str) -> LocalPipelineExecutions:
        if operation != "list_pipeline_executions":
            raise AlarmEvaluationError(f"the local SageMaker client has no paginator {operation!r}")
        return self

    def paginate(self, *, PipelineName: str, SortBy: str = "CreationTime", SortOrder: str = "Descending",  # noqa: N803
                 **_: Any) -> Iterator[dict[str, Any]]:  # fmt: skip
        summaries = []
        for path in (self.workdir / "executions").glob("*/execution.json"):
            try:
                record = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if record.get("pipeline_name") != PipelineName or not record.get("started"):
                continue
            summaries.append(
                {
                    "PipelineExecutionArn": record.get("pipeline_execution_arn", record["execution_id"]),
                    "PipelineExecutionStatus": record.get("status"),
                    "StartTime": datetime.fromisoformat(record["started"]),
                }
            )
        summaries.sort(key=lambda s: s["StartTime"], reverse=SortOrder == "Descending")
        yield {"PipelineExecutionSummaries": summaries}

    def start_pipeline_execution(self, **request: Any) -> dict[str, Any]:
        self.started.append(request)
        name = request["PipelineName"]
        return {
            "PipelineExecutionArn": (
                f"arn:aws:sagemaker:{self.region}:{self.account}:pipeline/{name.lower()}/execution/"
                f"{WOULD_START}-{len(self.started)}"
            )
        }



@dataclass
class Outcome:
    """What one state change set off."""

    alarm: str
    state: str
    notified: list[str] = field(default_factory=list)  # SNS topics of the alarm's actions
    rules: list[str] = field(default_factory=list)  # EventBridge rules the change matched
    decisions: list[dict[str, Any]] = field(default_factory=list)  # the retrain guard's results


def _load_handler_module(directory: Path, handler: str) -> ModuleType:
    """Import the handler module the way the Lambda runtime does: the asset's root first on the
    import path, so the handler binds to the modules its asset carries (its siblings, the shared
    logger, its copy of ``contract``), not to this checkout's."""
    module_name = handler.rsplit(".", 1)[0]
    if not (directory / f"{module_name.replace('.', '/')}.py").is_file():
        raise AlarmEvaluationError(f"cannot load Lambda handler {handler} from {directory}")
    return import_isolated(directory, module_name)


def _run_retrain_guard(
    assembly: CloudAssembly, function: Resource, event: Mapping[str, Any], workdir: Path, now: datetime
) -> dict[str, Any]:
    module = _load_handler_module(assembly.lambda_code_directory(function), function.properties["Handler"])
    if not hasattr(module, "guard") or not hasattr(module, "GuardConfig"):
        raise AlarmEvaluationError(f"{function.properties['Handler']} is not the retrain guard")
    environment = function.properties.get("Environment", {}).get("Variables", {})
    config = module.GuardConfig.from_environment(environment)
    client = LocalPipelineExecutions(workdir, assembly.region, assembly.account)
    log = io.StringIO()
    with contextlib.redirect_stdout(log):  # the function's log lines, as CloudWatch Logs would keep them
        result = dict(module.guard(event, client=client, config=config, now=now))
    result["log"] = log.getvalue().splitlines()
    if client.started:
        result["would_start"] = client.started[-1]
    return result


def route_changes(assembly: CloudAssembly, evaluations: Sequence[Evaluation], workdir: Path) -> list[Outcome]:
    """Alarm actions and EventBridge rules for every alarm whose state changed."""
    rules = assembly.resources(RULE_TYPE)
    functions = {assembly.get_att(f, "Arn"): f for f in assembly.resources(FUNCTION_TYPE)}
    outcomes = []
    for evaluation in evaluations:
        if not evaluation.changed:
            continue
        alarm = evaluation.alarm
        outcome = Outcome(alarm.name, evaluation.state)
        actions = {"ALARM": alarm.alarm_actions, "OK": alarm.ok_actions}.get(evaluation.state, ())
        outcome.notified = [arn.rsplit(":", 1)[-1] for arn in actions]
        event = state_change_event(evaluation, assembly.account, assembly.region)
        for rule in rules:
            pattern = rule.properties.get("EventPattern")
            if not pattern or rule.properties.get("State", "ENABLED") != "ENABLED":
                continue
            if not pattern_matches(pattern, event):
                continue
            outcome.rules.append(rule.properties.get("Name", rule.logical_id))
            for target in rule.properties.get("Targets", []):
                function = functions.get(target.get("Arn"))
                if function is None:
                    outcome.notified.append(str(target.get("Arn", "")).rsplit(":", 1)[-1])
                    continue
                decision = _run_retrain_guard(
                    assembly, function, event, workdir, evaluation.at or datetime.now(UTC)
                )
                decision["function"] = function.properties.get("FunctionName", function.logical_id)
                outcome.decisions.append(decision)
        outcomes.append(outcome)
    return outcomes


def format_outcomes(outcomes: Sequence[Outcome]) -> str:
    lines = []
    for outcome in outcomes:
        lines.append(f"  {outcome.alarm} -> {outcome.state}")
        if outcome.notified:
            lines.append(f"    notifies: {', '.join(outcome.notified)}")
        for decision in outcome.decisions:
            action = decision.get("action")
            if action == "started":
                lines.append(
                    f"    retrain guard ({decision['function']}): would start "
                    f"{decision['would_start']['PipelineName']}: "
                    f"{decision['would_start'].get('PipelineExecutionDescription', '')[:160]}"
                )
            else:
                lines.append(
                    f"    retrain guard ({decision['function']}): {action}: {decision.get('reason')}"
                )
    return "\n".join(lines)
