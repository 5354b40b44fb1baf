"""The deploy Lambda's handler against a moto server over HTTP: first deployment, duplicates,
rollback on rejection, malformed events, in-flight retries, autoscaling and cleanup.

moto has no UpdateEndpoint, so where the handler updates the endpoint the call is answered in-process
(after botocore validated it against the real service model) and recorded; the request is asserted.
moto's endpoints are InService at once, so the busy and failed states are written into DescribeEndpoint's
parsed answer by an after-call hook.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from deploy_helpers import (
    BUCKET,
    IMAGE,
    KEY_ARN,
    ROLE_ARN,
    decide,
    environment,
    in_service_event,
    register_versions,
)


@pytest.fixture
def deploy(aws, monkeypatch):  # noqa: F811
    """dev's Lambda environment, a registry with 5 pending versions, and hooks for what moto lacks."""
    names, env = environment("dev")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    boto3.setup_default_session()
    updates: list[dict[str, Any]] = []
    busy = {"status": None}

    def record_update_endpoint(params, **_):
        updates.append(dict(params))

    def answer_update_endpoint(**_):
        # Reached only after botocore validated the request against the service model.
        arn = f"arn:aws:sagemaker:eu-west-1:123456789012:endpoint/{names.endpoint}"
        return SimpleNamespace(status_code=200, headers={}), {"EndpointArn": arn, "ResponseMetadata": {}}

    def fake_busy_status(parsed, **_):
        if busy["status"] and "EndpointStatus" in parsed:
            parsed["EndpointStatus"] = busy["status"]

    events = boto3.DEFAULT_SESSION.events
    events.register("before-parameter-build.sagemaker.UpdateEndpoint", record_update_endpoint)
    events.register("before-call.sagemaker.UpdateEndpoint", answer_update_endpoint)
    events.register("after-call.sagemaker.DescribeEndpoint", fake_busy_status)
    sagemaker = boto3.client("sagemaker")
    arns = register_versions(sagemaker, names.model_package_group, 5)

    d = SimpleNamespace(
        names=names, env=env, sm=sagemaker, arns=arns, updates=updates, busy=busy,
        autoscaling=boto3.client("application-autoscaling"),
        decide=lambda index, status: decide(sagemaker, names.model_package_group, arns[index], status),
    )
    yield d
    boto3.DEFAULT_SESSION = None


def _configs(deploy) -> list[str]:
    return sorted(c["EndpointConfigName"] for c in deploy.sm.list_endpoint_configs()["EndpointConfigs"])


def _models(deploy) -> list[str]:
    return sorted(m["ModelName"] for m in deploy.sm.list_models()["Models"])


def _log_lines(capsys) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


def test_first_approval_creates_model_config_with_capture_and_endpoint(deploy, deploy_handler):
    result = deploy_handler.handler(deploy.decide(0, "Approved"), None)

    assert result["action"] == "created"
    config_name = result["endpoint_config"]
    assert config_name.startswith("dogbreeds-dev-config-v1-") and len(config_name.rsplit("-", 1)[1]) == 8
    endpoint = deploy.sm.describe_endpoint(EndpointName="dogbreeds-dev-endpoint")
    assert endpoint["EndpointConfigName"] == config_name

    config = deploy.sm.describe_endpoint_config(EndpointConfigName=config_name)
    [variant] = config["ProductionVariants"]
    assert variant["VariantName"] == "AllTraffic"
    assert variant["InstanceType"] == "ml.m5.large" and variant["InitialInstanceCount"] == 1
    assert variant["ModelName"] == result["model"]
    assert config["KmsKeyId"] == KEY_ARN
    capture = config["DataCaptureConfig"]
    assert capture["EnableCapture"] is True
    assert capture["InitialSamplingPercentage"] == 100  # dev's data_capture_percent
    assert capture["DestinationS3Uri"] == f"s3://{BUCKET}/capture"
    assert capture["KmsKeyId"] == KEY_ARN
    assert capture["CaptureOptions"] == [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}]
    assert capture["CaptureContentTypeHeader"] == {"JsonContentTypes": ["application/json"]}

    model = deploy.sm.describe_model(ModelName=result["model"])
    assert model["ExecutionRoleArn"] == ROLE_ARN
    assert model["PrimaryContainer"]["Image"] == IMAGE
    assert model["PrimaryContainer"]["ModelDataUrl"].endswith("/run1/model.tar.gz")
    # inference.py reports the package ARN as the model version of every response
    assert model["PrimaryContainer"]["Environment"]["DOGBREEDS_MODEL_VERSION"].startswith(
        "arn:aws:sagemaker:"
    )
    assert deploy.updates == []


def test_duplicate_approval_of_the_live_version_does_nothing(deploy, deploy_handler):
    event = deploy.decide(0, "Approved")
    first = deploy_handler.handler(event, None)
    second = deploy_handler.handler(event, None)

    assert first["action"] == "created"
    assert second == {"action": "none", "reason": f"version 1 is already live as {first['endpoint_config']}"}
    assert _configs(deploy) == [first["endpoint_config"]]
    assert _models(deploy) == [first["model"]]
    assert deploy.updates == []


def test_approving_a_newer_version_updates_with_canary_and_rollback_alarms(deploy, deploy_handler):
    deploy_handler.handler(deploy.decide(0, "Approved"), None)
    result = deploy_handler.handler(deploy.decide(1, "Approved"), None)

    assert result["action"] == "updated" and result["endpoint_config"].startswith("dogbreeds-dev-config-v2-")
    [update] = deploy.updates
    assert update["EndpointConfigName"] == result["endpoint_config"]
    policy = update["DeploymentConfig"]["BlueGreenUpdatePolicy"]
    assert policy["TrafficRoutingConfiguration"] == {
        "Type": "CANARY",
        "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 50},  # dev: canary_percent 50
        "WaitIntervalInSeconds": 300,  # dev: canary_wait_minutes 5
    }
    alarms = [a["AlarmName"] for a in update["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]]
    assert alarms == list(deploy.names.rollback_alarms)


def test_rejecting_the_live_version_rolls_back_to_newest_remaining_approved(deploy, deploy_handler):
    deploy_handler.handler(deploy.decide(0, "Approved"), None)  # v1
    deploy.decide(1, "Approved")  # v2 approved; its event not delivered yet
    deploy.decide(2, "Approved")  # v3 approved
    live = deploy_handler.handler(deploy.decide(2, "Approved"), None)
    assert live["action"] == "updated"
    # moto cannot apply the update, so make v3 live the way SageMaker would have: point the endpoint
    # at v3's config by recreating it.
    deploy.sm.delete_endpoint(EndpointName=deploy.names.endpoint)
    deploy.sm.create_endpoint(EndpointName=deploy.names.endpoint, EndpointConfigName=live["endpoint_config"])

    result = deploy_handler.handler(deploy.decide(2, "Rejected"), None)

    assert result["action"] == "updated"
    assert result["version"] == 2 and result["reason"] == "rollback from rejected version 3"
    assert deploy.updates[-1]["EndpointConfigName"] == result["endpoint_config"]


def test_rejecting_a_version_that_is_not_live_does_nothing(deploy, deploy_handler):
    deploy_handler.handler(deploy.decide(0, "Approved"), None)
    result = deploy_handler.handler(deploy.decide(3, "Rejected"), None)
    assert result == {"action": "none", "reason": "rejected version 4 is not live (live: 1)"}
    assert deploy.updates == []


def test_a_stale_approval_of_a_since_rejected_version_does_nothing(deploy, deploy_handler):
    event = deploy.decide(0, "Approved")
    deploy.decide(0, "Rejected")
    result = deploy_handler.handler(event, None)
    assert result["reason"] == "package version 1 is now Rejected, not Approved"
    assert _configs(deploy) == []


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda e: e["detail"].update(ModelPackageGroupName="other"), "model package group 'other'"),
        (lambda e: e["detail"].pop("ModelPackageVersion"), "ModelPackageVersion must be a positive integer"),
        (lambda e: e["detail"].update(ModelApprovalStatus="PendingManualApproval"), "ModelApprovalStatus"),
        (lambda e: e["detail"].update(ModelPackageArn="arn:aws:s3:::x"), "is not a version ARN"),
        (lambda e: e.update(source="aws.s3"), "source must be 'aws.sagemaker'"),
        (lambda e: e.pop("detail"), "no 'detail' object"),
        (lambda e: e.update({"detail-type": "Something Else"}), "detail-type must be"),
    ],
)
def test_malformed_events_are_ignored_with_the_reason_logged(deploy, capsys, mutate, reason, deploy_handler):
    event = deploy.decide(0, "Approved")
    mutate(event)
    result = deploy_handler.handler(event, None)

    assert result["action"] == "ignored" and reason in result["reason"]
    [line] = [entry for entry in _log_lines(capsys) if entry["message"] == "ignored malformed event"]
    assert line["level"] == "WARNING" and reason in line["reason"]
    assert _configs(deploy) == [] and _models(deploy) == []


def test_an_approval_while_the_endpoint_is_updating_is_retried_then_caught_up(
    deploy, capsys, deploy_handler, endpoint_rollout
):
    deploy_handler.handler(deploy.decide(0, "Approved"), None)
    deploy.busy["status"] = "Updating"
    with pytest.raises(endpoint_rollout.EndpointBusyError, match="is Updating; retrying later"):
        deploy_handler.handler(deploy.decide(1, "Approved"), None)
    assert not any("-v2-" in name for name in _configs(deploy))  # nothing half-done
    assert any(entry["message"] == "endpoint busy, event will be retried" for entry in _log_lines(capsys))

    # The rollout finishes; the InService event deploys the approval whose retries may have run out.
    deploy.busy["status"] = None
    result = deploy_handler.handler(in_service_event(deploy.names.endpoint), None)
    assert result["deferred"]["action"] == "updated"
    assert result["deferred"]["endpoint_config"].startswith("dogbreeds-dev-config-v2-")
    assert deploy.updates[-1]["EndpointConfigName"] == result["deferred"]["endpoint_config"]


def test_in_service_registers_target_tracking_autoscaling(deploy, deploy_handler):
    deploy_handler.handler(deploy.decide(0, "Approved"), None)
    deploy_handler.handler(in_service_event(deploy.names.endpoint), None)

    [target] = deploy.autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert target["ResourceId"] == "endpoint/dogbreeds-dev-endpoint/variant/AllTraffic"
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 1)  # dev settings
    [policy] = deploy.autoscaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["TargetValue"] == 100.0
    assert tracking["PredefinedMetricSpecification"]["PredefinedMetricType"] == (
        "SageMakerVariantInvocationsPerInstance"
    )


def test_in_service_cleans_up_beyond_keep_versions_but_never_the_live_config(deploy, deploy_handler):
    created = deploy_handler.handler(deploy.decide(0, "Approved"), None)  # v1 stays live in moto
    for index in range(1, 5):
        assert deploy_handler.handler(deploy.decide(index, "Approved"), None)["action"] == "updated"
    assert len(_configs(deploy)) == 5

    result = deploy_handler.handler(in_service_event(deploy.names.endpoint), None)

    remaining = _configs(deploy)
    # keep_versions is 3 (v5, v4, v3) plus the live v1; v2's config and model are gone.
    assert [name.split("-")[3] for name in remaining] == ["v1", "v3", "v4", "v5"]
    assert created["endpoint_config"] in remaining
    assert [name.split("-")[3] for name in _models(deploy)] == ["v1", "v3", "v4", "v5"]
    assert [name.split("-")[3] for name in result["deleted"]["endpoint_configs"]] == ["v2"]


def test_serverless_endpoint_has_no_capture_and_no_autoscaling(deploy, monkeypatch, deploy_handler):
    _, env = environment("dev", kind="serverless", serverless_memory_mb=2048)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    result = deploy_handler.handler(deploy.decide(0, "Approved"), None)
    config = deploy.sm.describe_endpoint_config(EndpointConfigName=result["endpoint_config"])
    [variant] = config["ProductionVariants"]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 5}
    assert "InstanceType" not in variant and not config.get("DataCaptureConfig")  # moto shows {}

    deploy_handler.handler(in_service_event(deploy.names.endpoint), None)
    assert deploy.autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"] == []


def test_a_failed_endpoint_is_reported_not_retried(deploy, capsys, deploy_handler):
    deploy_handler.handler(deploy.decide(0, "Approved"), None)
    deploy.busy["status"] = "Failed"
    result = deploy_handler.handler(deploy.decide(1, "Approved"), None)
    assert result["action"] == "endpoint-failed"
    [line] = [entry for entry in _log_lines(capsys) if entry["level"] == "ERROR"]
    assert "Delete it and approve again" in line["message"]
    assert deploy.updates == []


def _decisions(capsys) -> list[dict[str, Any]]:
    return [entry for entry in _log_lines(capsys) if "deployment" in entry]


def _live_versions(deploy) -> tuple[set[float], int]:
    """LiveModelVersion read back from CloudWatch (moto over HTTP): the values, and how many were put."""
    from datetime import UTC, datetime, timedelta

    cloudwatch = boto3.client("cloudwatch")
    namespace = deploy.names.deployment_metric_namespace
    [metric] = cloudwatch.list_metrics(Namespace=namespace)["Metrics"]
    assert metric["MetricName"] == "LiveModelVersion"
    assert metric["Dimensions"] == [{"Name": "EndpointName", "Value": deploy.names.endpoint}]
    now = datetime.now(UTC)
    results = cloudwatch.get_metric_data(
        MetricDataQueries=[
            {"Id": stat.lower(), "MetricStat": {"Metric": metric, "Period": 60, "Stat": stat}}
            for stat in ("Maximum", "SampleCount")
        ],
        StartTime=now - timedelta(hours=1),
        EndTime=now + timedelta(minutes=5),
    )["MetricDataResults"]
    values = {r["Id"]: r["Values"] for r in results}
    return set(values["maximum"]), int(sum(values["samplecount"]))


def test_completed_rollout_logs_the_decision_and_publishes_the_live_version(deploy, capsys, deploy_handler):
    deploy_handler.handler(deploy.decide(0, "Approved"), None)
    [started] = _decisions(capsys)
    assert started["deployment"] == "started" and started["version"] == 1
    assert started["strategy"] == "new endpoint" and started["reason"] == "approved"

    result = deploy_handler.handler(in_service_event(deploy.names.endpoint), None)

    assert result["live_version"] == 1
    [completed] = _decisions(capsys)
    assert completed["deployment"] == "completed" and completed["version"] == 1
    assert _live_versions(deploy) == ({1.0}, 1)
    # Its own namespace: not the monitors' one, which drift alarms read.
    cloudwatch = boto3.client("cloudwatch")
    assert cloudwatch.list_metrics(Namespace=deploy.names.metric_namespace)["Metrics"] == []


def test_a_canary_that_did_not_take_is_reported_as_rolled_back(deploy, capsys, deploy_handler):
    deploy_handler.handler(deploy.decide(0, "Approved"), None)
    deploy_handler.handler(in_service_event(deploy.names.endpoint), None)
    capsys.readouterr()
    deploy_handler.handler(deploy.decide(1, "Approved"), None)
    [started] = _decisions(capsys)
    assert started["deployment"] == "started" and started["strategy"] == "canary"
    assert (started["version"], started["previous_version"]) == (2, 1)
    # dev: 50 % canary for 5 minutes, then the full fleet bakes termination_wait_minutes 5.
    assert (started["canary_percent"], started["canary_wait_seconds"], started["baking_seconds"]) == (
        50, 300, 300
    )

    # moto does not apply the update: the endpoint comes back InService on v1, as after a rollback.
    result = deploy_handler.handler(in_service_event(deploy.names.endpoint), None)

    [rolled_back] = _decisions(capsys)
    assert rolled_back["deployment"] == "rolled back"
    assert (rolled_back["version"], rolled_back["rolled_back_version"]) == (1, 2)
    assert "Reject version 2" in rolled_back["reason"]
    assert "deferred" not in result  # never redeployed by the catch-up
    assert _live_versions(deploy) == ({1.0}, 2)  # one datapoint per InService, both v1


def test_busy_and_unexpected_failures_are_logged_as_decisions(
    deploy, capsys, monkeypatch, deploy_handler, endpoint_rollout
):
    deploy_handler.handler(deploy.decide(0, "Approved"), None)
    deploy.busy["status"] = "Updating"
    with pytest.raises(endpoint_rollout.EndpointBusyError):
        deploy_handler.handler(deploy.decide(1, "Approved"), None)
    assert [d["deployment"] for d in _decisions(capsys)] == ["started", "retrying"]

    deploy.busy["status"] = None
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens: every call fails
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    boto3.setup_default_session()
    with pytest.raises(Exception):  # noqa: B017 - botocore's connection error, re-raised for Lambda
        deploy_handler.handler(deploy.decide(2, "Approved"), None)
    [failed] = _decisions(capsys)
    assert failed["deployment"] == "failed" and failed["level"] == "ERROR" and failed["version"] == 3


def test_a_metric_that_cannot_be_published_is_logged_not_raised(capsys, deploy_config, deploy_metrics):
    from botocore.stub import Stubber

    _, env = environment("dev")
    config = deploy_config.DeployConfig.from_environ(env)
    cloudwatch = boto3.client("cloudwatch", region_name="eu-west-1", aws_access_key_id="x",
                              aws_secret_access_key="x", endpoint_url="http://127.0.0.1:9")
    with Stubber(cloudwatch) as stub:
        stub.add_client_error("put_metric_data", "AccessDenied", "not allowed")
        assert deploy_metrics.publish_live_version(cloudwatch, config, 4) is False
    [line] = _log_lines(capsys)
    assert line["level"] == "ERROR" and line["version"] == 4 and "AccessDenied" in line["reason"]
