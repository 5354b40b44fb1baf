"""The update path of a deployment, checked call by call with botocore's Stubber against the real
SageMaker and Application Auto Scaling service models (moto has no UpdateEndpoint).

Uses prod's settings: 2-6 instances, a 10% canary baking 15 minutes.
"""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import Stubber
from deploy_helpers import IMAGE, KEY_ARN, ROLE_ARN, environment

REGION = "eu-west-1"
GROUP_ARN = "arn:aws:sagemaker:eu-west-1:123456789012:model-package/dogbreeds-prod-models"
NOW = datetime(2026, 11, 27, tzinfo=UTC)
NOT_FOUND = "Could not find model"
CONFIG_NOT_FOUND = "Could not find endpoint configuration"
CONFIG_ARN = "arn:aws:sagemaker:eu-west-1:1:endpoint-config/c"


@pytest.fixture
def prod(deploy_config):
    names, env = environment("prod")
    config = deploy_config.DeployConfig.from_environ(env)
    credentials = {"region_name": REGION, "aws_access_key_id": "x", "aws_secret_access_key": "x"}
    sagemaker = boto3.client("sagemaker", **credentials)
    autoscaling = boto3.client("application-autoscaling", **credentials)
    with Stubber(sagemaker) as sm, Stubber(autoscaling) as aas:
        yield names, config, sagemaker, autoscaling, sm, aas
        sm.assert_no_pending_responses()
        aas.assert_no_pending_responses()


def _package(version: int) -> dict:
    return {
        "ModelPackageName": "dogbreeds-prod-models",
        "ModelPackageGroupName": "dogbreeds-prod-models",
        "ModelPackageVersion": version,
        "ModelPackageArn": f"{GROUP_ARN}/{version}",
        "CreationTime": NOW,
        "ModelPackageStatus": "Completed",
        "ModelPackageStatusDetails": {"ValidationStatuses": []},
        "ModelApprovalStatus": "Approved",
        "InferenceSpecification": {
            "Containers": [{"Image": IMAGE, "ModelDataUrl": f"s3://bucket/run{version}/model.tar.gz"}],
            "SupportedContentTypes": ["image/jpeg"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
    }


def _stub_until_update(names, sm, *, live_instance_type: str, desired_instances: int) -> tuple[str, str]:
    """Stub the calls before UpdateEndpoint; return the new model and config names."""
    sm.add_response("describe_model_package", _package(2), {"ModelPackageName": f"{GROUP_ARN}/2"})
    live_config = f"{names.endpoint_config_prefix}-v1-0123abcd"
    sm.add_response(
        "describe_endpoint",
        {
            "EndpointName": names.endpoint,
            "EndpointArn": f"arn:aws:sagemaker:eu-west-1:123456789012:endpoint/{names.endpoint}",
            "EndpointConfigName": live_config,
            "EndpointStatus": "InService",
            "CreationTime": NOW,
            "LastModifiedTime": NOW,
            "ProductionVariants": [
                {"VariantName": "AllTraffic", "CurrentInstanceCount": desired_instances,
                 "DesiredInstanceCount": desired_instances}
            ],
        },
        {"EndpointName": names.endpoint},
    )
    sm.add_client_error("describe_model", "ValidationException", NOT_FOUND)
    sm.add_response("create_model", {"ModelArn": "arn:aws:sagemaker:eu-west-1:123456789012:model/m"})
    sm.add_client_error("describe_endpoint_config", "ValidationException", CONFIG_NOT_FOUND)
    sm.add_response("create_endpoint_config", {"EndpointConfigArn": CONFIG_ARN})
    sm.add_response(
        "describe_endpoint_config",
        {
            "EndpointConfigName": live_config,
            "EndpointConfigArn": f"arn:aws:sagemaker:eu-west-1:123456789012:endpoint-config/{live_config}",
            "CreationTime": NOW,
            "ProductionVariants": [
                {"VariantName": "AllTraffic", "ModelName": "old", "InstanceType": live_instance_type,
                 "InitialInstanceCount": 2}
            ],
        },
        {"EndpointConfigName": live_config},
    )
    return live_config


def _expected_update(names, config_name: str) -> dict:
    return {
        "EndpointName": names.endpoint,
        "EndpointConfigName": config_name,
        "DeploymentConfig": {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {
                    "Type": "CANARY",
                    "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10},
                    "WaitIntervalInSeconds": 15 * 60,
                },
                "TerminationWaitInSeconds": 5 * 60,
            },
            "AutoRollbackConfiguration": {
                "Alarms": [
                    {"AlarmName": "dogbreeds-prod-endpoint-5xx-errors"},
                    {"AlarmName": "dogbreeds-prod-endpoint-model-latency-p99"},
                    {"AlarmName": "dogbreeds-prod-endpoint-invocation-errors"},
                ]
            },
        },
    }


@pytest.fixture(scope="module")
def approve(deploy_events, endpoint_rollout):
    """Hand the rollout the approval of version 2."""

    def approve(config, sagemaker, autoscaling):
        rollout = endpoint_rollout.Rollout(config, sagemaker, autoscaling)
        decision = deploy_events.PackageDecision(package_arn=f"{GROUP_ARN}/2", version=2, status="Approved")
        return rollout.handle(decision)

    return approve


def test_same_instance_type_update_leaves_autoscaling_registered(prod, approve):
    names, config, sagemaker, autoscaling, sm, _ = prod
    _stub_until_update(names, sm, live_instance_type="ml.m5.xlarge", desired_instances=4)
    # No autoscaling stub: any Application Auto Scaling call would fail the test. AWS allows changing
    # only the model of a registered variant, so the target stays registered through the update.
    sm.add_response("update_endpoint", {"EndpointArn": "arn:aws:sagemaker:eu-west-1:1:endpoint/e"})

    assert approve(config, sagemaker, autoscaling)["action"] == "updated"


def test_update_request_is_exactly_as_specified(prod, approve, deploy_names, endpoint_rollout):
    names, config, sagemaker, autoscaling, sm, _ = prod
    _stub_until_update(names, sm, live_instance_type="ml.m5.xlarge", desired_instances=4)
    # Pre-compute the names the rollout will choose, then demand the exact request.
    digest_of = deploy_names.deployment_digest
    rollout = endpoint_rollout.Rollout(config, sagemaker, autoscaling)
    container = rollout._container(_package(2))
    digest = digest_of({"package": f"{GROUP_ARN}/2", "container": container, "settings": rollout._settings()})
    config_name = f"{names.endpoint_config_prefix}-v2-{digest}"
    sm.add_response("update_endpoint", {"EndpointArn": "arn:aws:sagemaker:eu-west-1:1:endpoint/e"},
                    _expected_update(names, config_name))

    result = approve(config, sagemaker, autoscaling)
    assert result["endpoint_config"] == config_name


def test_new_config_matches_current_capacity_and_model_is_isolated(
    prod, approve, deploy_names, endpoint_rollout
):
    names, config, sagemaker, autoscaling, sm, _ = prod
    sm.add_response("describe_model_package", _package(2), {"ModelPackageName": f"{GROUP_ARN}/2"})
    sm.add_response(
        "describe_endpoint",
        {
            "EndpointName": names.endpoint, "EndpointArn": "arn:aws:sagemaker:eu-west-1:1:endpoint/e",
            "EndpointConfigName": f"{names.endpoint_config_prefix}-v1-0123abcd",
            "EndpointStatus": "InService",
            "CreationTime": NOW, "LastModifiedTime": NOW,
            "ProductionVariants": [{"VariantName": "AllTraffic", "CurrentInstanceCount": 4,
                                    "DesiredInstanceCount": 4}],
        },
    )
    rollout = endpoint_rollout.Rollout(config, sagemaker, autoscaling)
    container = rollout._container(_package(2))
    digest = deploy_names.deployment_digest(
        {"package": f"{GROUP_ARN}/2", "container": container, "settings": rollout._settings()}
    )
    model_name = f"{names.model_prefix}-v2-{digest}"
    sm.add_client_error("describe_model", "ValidationException", NOT_FOUND)
    sm.add_response(
        "create_model", {"ModelArn": "arn:aws:sagemaker:eu-west-1:1:model/m"},
        {"ModelName": model_name, "PrimaryContainer": container, "ExecutionRoleArn": ROLE_ARN,
         "EnableNetworkIsolation": True},
    )
    sm.add_client_error("describe_endpoint_config", "ValidationException", CONFIG_NOT_FOUND)
    expected_config = {
        "EndpointConfigName": f"{names.endpoint_config_prefix}-v2-{digest}",
        "ProductionVariants": [
            # Autoscaling has 4 instances running: the green fleet starts with 4, not prod's 2.
            {"VariantName": "AllTraffic", "ModelName": model_name, "InstanceType": "ml.m5.xlarge",
             "InitialInstanceCount": 4}
        ],
        "KmsKeyId": KEY_ARN,
        "DataCaptureConfig": {
            "EnableCapture": True,
            "InitialSamplingPercentage": 20,
            "DestinationS3Uri": "s3://dogbreeds-dev-data-123456789012-eu-west-1/capture",
            "KmsKeyId": KEY_ARN,
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]},
        },
    }
    sm.add_response("create_endpoint_config", {"EndpointConfigArn": CONFIG_ARN}, expected_config)
    sm.add_response(
        "describe_endpoint_config",
        {"EndpointConfigName": "live", "EndpointConfigArn": CONFIG_ARN, "CreationTime": NOW,
         "ProductionVariants": [
             {"VariantName": "AllTraffic", "ModelName": "old", "InstanceType": "ml.m5.xlarge"}
         ]},
    )
    sm.add_response("update_endpoint", {"EndpointArn": "arn:aws:sagemaker:eu-west-1:1:endpoint/e"})

    assert approve(config, sagemaker, autoscaling)["action"] == "updated"


def test_changing_instance_type_deregisters_autoscaling_before_the_update(prod, approve):
    names, config, sagemaker, autoscaling, sm, aas = prod
    _stub_until_update(names, sm, live_instance_type="ml.m5.large", desired_instances=2)
    resource = {
        "ServiceNamespace": "sagemaker",
        "ResourceId": f"endpoint/{names.endpoint}/variant/AllTraffic",
        "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
    }
    aas.add_response(
        "describe_scalable_targets",
        {"ScalableTargets": [{**resource, "MinCapacity": 2, "MaxCapacity": 6, "RoleARN": ROLE_ARN,
                              "CreationTime": NOW}]},
        {"ServiceNamespace": "sagemaker", "ResourceIds": [resource["ResourceId"]],
         "ScalableDimension": resource["ScalableDimension"]},
    )
    aas.add_response("deregister_scalable_target", {}, resource)
    sm.add_response("update_endpoint", {"EndpointArn": "arn:aws:sagemaker:eu-west-1:1:endpoint/e"})

    assert approve(config, sagemaker, autoscaling)["action"] == "updated"


def test_a_busy_endpoint_raises_so_lambda_retries_and_creates_nothing(prod, approve, endpoint_rollout):
    names, config, sagemaker, autoscaling, sm, _ = prod
    sm.add_response("describe_model_package", _package(2))
    sm.add_response(
        "describe_endpoint",
        {"EndpointName": names.endpoint, "EndpointArn": "arn:aws:sagemaker:eu-west-1:1:endpoint/e",
         "EndpointConfigName": f"{names.endpoint_config_prefix}-v1-0123abcd", "EndpointStatus": "Updating",
         "CreationTime": NOW, "LastModifiedTime": NOW},
    )
    with pytest.raises(endpoint_rollout.EndpointBusyError, match="Updating"):
        approve(config, sagemaker, autoscaling)
