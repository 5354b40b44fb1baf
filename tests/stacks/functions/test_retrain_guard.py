"""The retrain guard Lambda against a moto server over HTTP: it starts the training pipeline when
idle, skips while an execution runs or one started within the interval, and ignores malformed
events with a reason. (moto reports every execution as Succeeded, so the Executing case uses
botocore's Stubber, which still checks requests and responses against SageMaker's service model.)"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from aws_test_env import REGION
from botocore.stub import ANY, Stubber

PIPELINE = "dogbreeds-dev-training"
TRIGGER = "dogbreeds-dev-monitoring-feature-drift"
ENVIRONMENT = {
    "RETRAIN_PIPELINE_NAME": PIPELINE,
    "RETRAIN_MIN_INTERVAL_HOURS": "24",
    "RETRAIN_TRIGGER_ALARMS": f"{TRIGGER},dogbreeds-dev-monitoring-accuracy-low",
}


def alarm_event(event_id: str = "7b5c3e0a-6a7e-4b8e-9d1c-1f2a3b4c5d6e", **overrides) -> dict:
    """A "CloudWatch Alarm State Change" event as EventBridge delivers it."""
    event = {
        "version": "0",
        "id": event_id,
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": "123456789012",
        "time": "2026-11-27T10:00:00Z",
        "region": REGION,
        "resources": [f"arn:aws:cloudwatch:{REGION}:123456789012:alarm:{TRIGGER}"],
        "detail": {
            "alarmName": TRIGGER,
            "state": {
                "value": "ALARM",
                "reason": "Threshold Crossed: 1 datapoint [0.41] was greater than the threshold (0.2).",
                "timestamp": "2026-11-27T10:00:00.000+0000",
            },
            "previousState": {"value": "OK", "reason": "", "timestamp": "2026-11-27T09:00:00.000+0000"},
        },
    }
    event.update(overrides)
    return event


@pytest.fixture(scope="module")
def guard_config(retrain_guard):
    return retrain_guard.GuardConfig.from_environment(ENVIRONMENT)


@pytest.fixture
def sagemaker(aws):  # noqa: F811
    client = boto3.client("sagemaker", region_name=REGION)
    client.create_pipeline(
        PipelineName=PIPELINE,
        PipelineDefinition=json.dumps({"Version": "2020-12-01", "Steps": []}),
        RoleArn="arn:aws:iam::123456789012:role/dogbreeds-dev-sagemaker-execution",
    )
    return client


def executions(client) -> list[dict]:
    return client.list_pipeline_executions(PipelineName=PIPELINE)["PipelineExecutionSummaries"]


def test_starts_the_training_pipeline_when_idle(sagemaker, monkeypatch, capsys, retrain_guard):
    for key, value in ENVIRONMENT.items():
        monkeypatch.setenv(key, value)
    result = retrain_guard.handler(alarm_event())
    assert result["action"] == "started"
    [execution] = executions(sagemaker)
    assert execution["PipelineExecutionArn"] == result["pipelineExecutionArn"]
    assert execution["PipelineExecutionDisplayName"].startswith("retrain-on-alarm-")
    assert TRIGGER in execution["PipelineExecutionDescription"]
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert logged[-1]["message"] == "retraining started"
    assert logged[-1]["alarm"] == TRIGGER


def test_skips_within_the_interval_and_starts_after_it(sagemaker, capsys, retrain_guard, guard_config):
    now = datetime.now(UTC)
    first = retrain_guard.guard(alarm_event("event-0001"), client=sagemaker, config=guard_config, now=now)
    assert first["action"] == "started"

    second = retrain_guard.guard(
        alarm_event("event-0002"), client=sagemaker, config=guard_config, now=now + timedelta(hours=23)
    )
    assert second["action"] == "skipped"
    assert "less than 24 h ago" in second["reason"]
    assert first["pipelineExecutionArn"] in second["reason"]
    assert len(executions(sagemaker)) == 1
    skipped_log = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert skipped_log["message"] == "retraining skipped" and skipped_log["reason"] == second["reason"]

    third = retrain_guard.guard(
        alarm_event("event-0003"), client=sagemaker, config=guard_config, now=now + timedelta(hours=25)
    )
    assert third["action"] == "started"
    assert len(executions(sagemaker)) == 2


def test_skips_while_an_execution_is_running_however_old(retrain_guard, guard_config):
    client = boto3.client(
        "sagemaker", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )
    now = datetime.now(UTC)
    running_arn = f"arn:aws:sagemaker:{REGION}:123456789012:pipeline/{PIPELINE}/execution/abc123def456"
    with Stubber(client) as stub:
        stub.add_response(
            "list_pipeline_executions",
            {
                "PipelineExecutionSummaries": [
                    {
                        "PipelineExecutionArn": running_arn,
                        # Started 3 days ago: outside the interval, but still holding GPUs.
                        "StartTime": now - timedelta(days=3),
                        "PipelineExecutionStatus": "Executing",
                    }
                ]
            },
            {"PipelineName": PIPELINE, "SortBy": "CreationTime", "SortOrder": "Descending"},
        )
        # No start_pipeline_execution is stubbed: the Stubber fails the test if one is made.
        result = retrain_guard.guard(alarm_event(), client=client, config=guard_config, now=now)
        stub.assert_no_pending_responses()
    assert result == {
        "action": "skipped",
        "alarm": TRIGGER,
        "reason": f"execution {running_arn} is Executing",
    }


def test_start_request_is_valid_for_sagemaker_and_idempotent_per_event(retrain_guard, guard_config):
    """Stubber validates the request against the service model (display name pattern, token length)."""
    client = boto3.client(
        "sagemaker", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stub:
        stub.add_response("list_pipeline_executions", {"PipelineExecutionSummaries": []})
        stub.add_response(
            "start_pipeline_execution",
            {"PipelineExecutionArn": f"arn:aws:sagemaker:{REGION}:1:pipeline/{PIPELINE}/execution/x"},
            {
                "PipelineName": PIPELINE,
                "PipelineExecutionDisplayName": "retrain-on-alarm-20261127100000",
                "PipelineExecutionDescription": ANY,
                "ClientRequestToken": "7b5c3e0a-6a7e-4b8e-9d1c-1f2a3b4c5d6e",
            },
        )
        result = retrain_guard.guard(
            alarm_event(), client=client, config=guard_config, now=datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
        )
        stub.assert_no_pending_responses()
    assert result["action"] == "started"


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ("not an object", "event must be a JSON object"),
        (alarm_event(**{"detail-type": "SageMaker Endpoint State Change"}), "only 'CloudWatch Alarm"),
        (alarm_event(detail={"state": {"value": "ALARM"}}), "alarm None is not a retrain trigger"),
        (
            alarm_event(detail={"alarmName": "someone-elses-alarm", "state": {"value": "ALARM"}}),
            "'someone-elses-alarm' is not a retrain trigger",
        ),
        (alarm_event(detail={"alarmName": TRIGGER, "state": {"value": "OK"}}), "alarm state is 'OK'"),
        (alarm_event(id=""), "event has no 'id'"),
        ({"detail-type": "CloudWatch Alarm State Change"}, "event has no 'detail' object"),
    ],
)
def test_malformed_events_are_ignored_with_a_reason(
    sagemaker, capsys, event, reason, retrain_guard, guard_config
):
    result = retrain_guard.guard(event, client=sagemaker, config=guard_config, now=datetime.now(UTC))
    assert result["action"] == "ignored"
    assert reason in result["reason"]
    assert executions(sagemaker) == []
    logged = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert logged["level"] == "WARNING" and logged["reason"] == result["reason"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"RETRAIN_PIPELINE_NAME": ""}, "RETRAIN_PIPELINE_NAME"),
        ({"RETRAIN_MIN_INTERVAL_HOURS": "0"}, "whole number of hours >= 1"),
        ({"RETRAIN_MIN_INTERVAL_HOURS": "1.5"}, "whole number of hours >= 1"),
    ],
)
def test_bad_configuration_names_the_variable(change, message, retrain_guard):
    with pytest.raises(RuntimeError, match=message):
        retrain_guard.GuardConfig.from_environment({**ENVIRONMENT, **change})
