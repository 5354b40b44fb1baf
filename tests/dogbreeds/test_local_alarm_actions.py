"""The synthesised alarms and rules, locally: what a state change sets off, with the deployed code."""

from __future__ import annotations

import copy
import json
import sys
from datetime import UTC, datetime, timedelta

import pytest
from moto.events.models import EventPattern

from dogbreeds.cloud_assembly import CloudAssembly, synthesize
from dogbreeds.local_alarm_actions import (
    RULE_TYPE,
    _load_handler_module,
    alarm_definitions,
    pattern_matches,
    route_changes,
    state_change_event,
)
from dogbreeds.local_alarms import ALARM, INSUFFICIENT, OK, AlarmStates, Datum, evaluate_all

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
FEATURE_DRIFT = "dogbreeds-dev-monitoring-feature-drift"
TRAINING_PIPELINE = "dogbreeds-dev-training"


@pytest.fixture(scope="module")
def assembly() -> CloudAssembly:
    return CloudAssembly.load(synthesize("dev", stream=None))


def _verdict(value: float, when: datetime) -> Datum:
    dimensions = frozenset({("Endpoint", "dogbreeds-dev-endpoint"), ("Monitor", "data_quality")})
    return Datum("dogbreeds/dev", "DriftedFeatures", dimensions, when, value, "Count")


def test_every_synthesised_alarm_is_evaluated_and_quiet_without_data(assembly, tmp_path):
    alarms = alarm_definitions(assembly)
    names = {alarm.name for alarm in alarms}
    assert {FEATURE_DRIFT, "dogbreeds-dev-monitoring-accuracy-low", "dogbreeds-dev-endpoint-5xx-errors"} <= (
        names
    )
    evaluations = evaluate_all(alarms, [], AlarmStates(tmp_path), at=NOW)
    states = {e.alarm.name: e.state for e in evaluations}
    # Only "no capture data" treats a silent monitor as breaching.
    assert states.pop("dogbreeds-dev-monitoring-no-capture-data") == ALARM
    assert set(states.values()) == {OK}


def test_the_rules_pattern_matching_agrees_with_moto(assembly):
    """Our matcher against moto's EventBridge pattern engine, for every rule and a set of events."""
    base = state_change_event(_evaluation(assembly, FEATURE_DRIFT, ALARM), assembly.account, assembly.region)
    events = [base]
    for name in ("dogbreeds-dev-monitoring-accuracy-low", "dogbreeds-dev-endpoint-5xx-errors", "other"):
        event = copy.deepcopy(base)
        event["detail"]["alarmName"] = name
        events.append(event)
    for state in (OK, INSUFFICIENT):
        event = copy.deepcopy(base)
        event["detail"]["state"]["value"] = state
        events.append(event)
    other_source = copy.deepcopy(base)
    other_source["source"] = "aws.sagemaker"
    events.append(other_source)
    rules = [r for r in assembly.resources(RULE_TYPE) if r.properties.get("EventPattern")]
    assert rules
    matched = 0
    for rule in rules:
        reference = EventPattern.load(json.dumps(rule.properties["EventPattern"]))
        for event in events:
            ours = pattern_matches(rule.properties["EventPattern"], event)
            assert ours == reference.matches_event(event), (rule.logical_id, event["detail"])
            matched += ours
    assert matched == 2  # the retrain rule, for the drift and the accuracy alarm going to ALARM


def _evaluation(assembly, name, state, previous=OK):
    from dogbreeds.local_alarms import Evaluation

    [alarm] = [a for a in alarm_definitions(assembly) if a.name == name]
    return Evaluation(alarm, state, previous, "test", at=NOW)


def _execution(workdir, execution_id, pipeline, started, status="Succeeded"):
    folder = workdir / "executions" / execution_id
    folder.mkdir(parents=True)
    (folder / "execution.json").write_text(
        json.dumps(
            {
                "execution_id": execution_id,
                "pipeline_name": pipeline,
                "pipeline_execution_arn": f"arn:aws:sagemaker:local:0:pipeline/{pipeline}/{execution_id}",
                "started": started.isoformat(timespec="seconds"),
                "status": status,
            }
        )
    )


def test_drift_reaches_the_deployed_retrain_guard_which_would_start_training(assembly, tmp_path):
    # A monitoring execution, and a training run long ago: neither stops a retrain.
    _execution(tmp_path, "m1", "dogbreeds-dev-monitoring", NOW - timedelta(minutes=5))
    _execution(tmp_path, "t1", TRAINING_PIPELINE, NOW - timedelta(days=3))
    data = [_verdict(0, NOW - timedelta(hours=2)), _verdict(2, NOW - timedelta(hours=1))]
    states = AlarmStates(tmp_path / "monitoring")
    evaluations = evaluate_all(alarm_definitions(assembly), data, states, at=NOW)
    outcomes = {o.alarm: o for o in route_changes(assembly, evaluations, tmp_path)}
    drift = outcomes[FEATURE_DRIFT]
    assert drift.state == ALARM and drift.notified == ["dogbreeds-dev-alerts"]
    assert drift.rules == ["dogbreeds-dev-retrain-on-alarm"]
    [decision] = drift.decisions
    assert decision["action"] == "started"
    assert decision["would_start"]["PipelineName"] == TRAINING_PIPELINE
    assert FEATURE_DRIFT in decision["would_start"]["PipelineExecutionDescription"]
    # Nothing was run: no new execution folder.
    assert sorted(p.name for p in (tmp_path / "executions").iterdir()) == ["m1", "t1"]

    # Evaluated again with nothing new: no change, so nothing is set off a second time.
    again = evaluate_all(alarm_definitions(assembly), data, AlarmStates(tmp_path / "monitoring"), at=NOW)
    assert FEATURE_DRIFT not in {o.alarm for o in route_changes(assembly, again, tmp_path)}


def test_the_guard_skips_while_training_ran_recently(assembly, tmp_path):
    _execution(tmp_path, "t1", TRAINING_PIPELINE, NOW - timedelta(hours=2))
    evaluations = evaluate_all(
        alarm_definitions(assembly), [_verdict(1, NOW - timedelta(hours=1))],
        AlarmStates(tmp_path / "monitoring"), at=NOW,
    )  # fmt: skip
    outcomes = {o.alarm: o for o in route_changes(assembly, evaluations, tmp_path)}
    [decision] = outcomes[FEATURE_DRIFT].decisions
    assert decision["action"] == "skipped"
    assert "retrain_min_interval_hours" in decision["reason"] and "t1" in decision["reason"]


def test_the_guard_is_loaded_from_its_asset_as_the_lambda_runtime_loads_it(assembly):
    """Its logger and its contract modules come from the asset, whatever this process holds."""
    [guard] = [r for r in assembly.resources("AWS::Lambda::Function") if "retrain" in r.properties["Handler"]]
    folder = assembly.lambda_code_directory(guard)
    before = {name: sys.modules.get(name) for name in ("function_log", "contract", "contract.events")}
    sys.modules.pop("function_log", None)  # a warm copy from another test must not stand in for the asset's
    try:
        module = _load_handler_module(folder, guard.properties["Handler"])
        assert module.log.__code__.co_filename == str(folder / "function_log.py")
        assert module.variables.__file__ == str(folder / "contract" / "environment_variables.py")
        assert "function_log" not in sys.modules  # set aside again: nothing of the asset leaks here
        assert sys.modules["contract.events"] is before["contract.events"]
    finally:
        sys.modules.update({name: m for name, m in before.items() if m is not None})
