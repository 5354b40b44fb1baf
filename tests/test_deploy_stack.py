"""DeploymentStack: the approval rule's exact pattern, the Lambda's wiring and scoped permissions,
and alarms named as the Lambda names them in every rollout."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Template
from cdk_helpers import build_app
from deploy_helpers import lambda_module

from stacks.naming import Names

deploy_config = lambda_module("deploy_config")


@pytest.fixture(scope="module")
def dev():
    _, stacks = build_app("dev")
    return stacks, Template.from_stack(stacks.deployment)


@pytest.fixture(scope="module")
def prod():
    _, stacks = build_app("prod")
    return stacks, Template.from_stack(stacks.deployment)


def _rules(template: Template) -> dict[str, dict]:
    rules = template.find_resources("AWS::Events::Rule").values()
    return {r["Properties"]["Name"]: r["Properties"] for r in rules}


def _function(template: Template) -> dict:
    [function] = template.find_resources("AWS::Lambda::Function").values()
    return function["Properties"]


def _statements(template: Template) -> dict[str, dict]:
    [policy] = [
        p for p in template.find_resources("AWS::IAM::Policy").values()
        if p["Properties"]["PolicyName"] == "dogbreeds-dev-deploy-endpoint"
    ]
    return {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}


def test_approval_rule_pattern_is_exactly_the_group_and_decisions(dev):
    stacks, template = dev
    rule = _rules(template)["dogbreeds-dev-model-approval"]
    assert rule["EventPattern"] == {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Model Package State Change"],
        "detail": {
            # The same string the training pipeline registers into, by construction.
            "ModelPackageGroupName": [stacks.names.model_package_group],
            "ModelApprovalStatus": ["Approved", "Rejected"],
        },
    }
    assert stacks.names.model_package_group == "dogbreeds-dev-models"
    [target] = rule["Targets"]
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 8, "MaximumEventAgeInSeconds": 7200}
    assert "DeadLetterConfig" in target


def test_endpoint_events_reach_the_lambda_and_the_alerts_topic(dev):
    _, template = dev
    rules = _rules(template)
    assert rules["dogbreeds-dev-endpoint-in-service"]["EventPattern"]["detail"] == {
        "EndpointName": ["dogbreeds-dev-endpoint"], "EndpointStatus": ["IN_SERVICE"],
    }
    failed = rules["dogbreeds-dev-endpoint-failed"]
    assert failed["EventPattern"]["detail"]["EndpointStatus"] == ["FAILED", "Failed"]
    deployment = rules["dogbreeds-dev-endpoint-deployment"]
    assert deployment["EventPattern"]["detail-type"] == ["SageMaker Endpoint Deployment State Change"]
    for rule in (failed, deployment):
        [target] = rule["Targets"]
        assert "AlertsTopic" in json.dumps(target["Arn"])  # the storage stack's topic, imported


def test_lambda_runs_alone_with_retries_and_a_dead_letter_queue(dev):
    _, template = dev
    function = _function(template)
    assert function["ReservedConcurrentExecutions"] == 1
    assert function["Runtime"] == "python3.14"
    assert function["Handler"] == "deploy_handler.handler"
    [invoke_config] = template.find_resources("AWS::Lambda::EventInvokeConfig").values()
    props = invoke_config["Properties"]
    assert props["MaximumRetryAttempts"] == 2
    assert props["MaximumEventAgeInSeconds"] == 6 * 3600
    assert "OnFailure" in props["DestinationConfig"]
    [queue] = template.find_resources("AWS::SQS::Queue").values()
    assert queue["Properties"]["QueueName"] == "dogbreeds-dev-deploy-endpoint-dlq"
    assert "KmsMasterKeyId" in queue["Properties"]
    [queue_policy] = template.find_resources("AWS::SQS::QueuePolicy").values()
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in queue_policy["Properties"]["PolicyDocument"]["Statement"]
    )
    [log_group] = template.find_resources("AWS::Logs::LogGroup").values()
    assert log_group["Properties"]["RetentionInDays"] == 14  # dev's log_retention_days


def test_lambda_environment_is_exactly_what_the_handler_reads(dev, prod):
    for stacks, template in (dev, prod):
        env = _function(template)["Environment"]["Variables"]
        assert set(env) == set(deploy_config.ENVIRONMENT_VARIABLES)
        assert env["DEPLOY_ROLLBACK_ALARMS"].split(",") == list(stacks.names.rollback_alarms)
    prod_env = _function(prod[1])["Environment"]["Variables"]
    assert prod_env["DEPLOY_CANARY_PERCENT"] == "10" and prod_env["DEPLOY_CANARY_WAIT_SECONDS"] == "900"
    assert prod_env["DEPLOY_INITIAL_INSTANCE_COUNT"] == "2" and prod_env["DEPLOY_MAX_INSTANCES"] == "6"


def test_alarms_exist_with_the_names_the_lambda_passes(dev):
    stacks, template = dev
    alarms = {
        a["Properties"]["AlarmName"]: a["Properties"]
        for a in template.find_resources("AWS::CloudWatch::Alarm").values()
    }
    assert set(alarms) == set(stacks.names.rollback_alarms)
    metrics = {
        name: (a["MetricName"], a.get("Statistic") or a.get("ExtendedStatistic"))
        for name, a in alarms.items()
    }
    assert metrics == {
        "dogbreeds-dev-endpoint-5xx-errors": ("Invocation5XXErrors", "Sum"),
        "dogbreeds-dev-endpoint-model-latency-p99": ("ModelLatency", "p99"),
        "dogbreeds-dev-endpoint-invocation-errors": ("InvocationModelErrors", "Sum"),
    }
    for alarm in alarms.values():
        assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == {
            "EndpointName": "dogbreeds-dev-endpoint", "VariantName": "AllTraffic",
        }
        assert alarm["TreatMissingData"] == "notBreaching"
        assert len(alarm["AlarmActions"]) == 1


def test_lambda_permissions_are_scoped_to_this_environment(dev):
    _, template = dev
    statements = _statements(template)
    rendered = {sid: json.dumps(s["Resource"]) for sid, s in statements.items()}
    assert ":model/dogbreeds-dev-model-*" in rendered["ManageOwnModels"]
    assert ":endpoint-config/dogbreeds-dev-config-*" in rendered["ManageOwnEndpointConfigs"]
    assert ":endpoint/dogbreeds-dev-endpoint" in rendered["DeployOwnEndpoint"]
    # Application Auto Scaling refuses RegisterScalableTarget to a caller without this.
    assert "sagemaker:UpdateEndpointWeightsAndCapacities" in statements["DeployOwnEndpoint"]["Action"]
    assert ":model-package/dogbreeds-dev-models/*" in rendered["ReadApprovedPackages"]
    pass_role = statements["PassOnlyTheExecutionRole"]
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    # Models run as the endpoint role, not the pipeline's broader execution role.
    assert "EndpointModelRole" in rendered["PassOnlyTheExecutionRole"]
    assert "SageMakerExecution" not in json.dumps(statements)
    # Wildcard resources only where the API has no resource-level permissions.
    wildcard = {sid for sid, s in statements.items() if s["Resource"] == "*"}
    assert wildcard == {"ListOwnResources", "ReadScaling", "ScaleOwnEndpoint", "PublishLiveModelVersion"}
    # PutMetricData takes no resource: only the deployment namespace, the one the Lambda is given.
    assert statements["PublishLiveModelVersion"]["Condition"] == {
        "StringEquals": {"cloudwatch:namespace": "dogbreeds/dev/deployment"}
    }
    assert _function(template)["Environment"]["Variables"]["DEPLOY_METRIC_NAMESPACE"] == (
        "dogbreeds/dev/deployment"
    )
    # Scaling writes only for SageMaker variants' instance counts, the values the Lambda sends.
    autoscaling = lambda_module("endpoint_autoscaling")
    assert statements["ScaleOwnEndpoint"]["Condition"] == {
        "StringEquals": {
            "application-autoscaling:service-namespace": autoscaling.SERVICE_NAMESPACE,
            "application-autoscaling:scalable-dimension": autoscaling.SCALABLE_DIMENSION,
        }
    }
    for sid in wildcard:
        actions = statements[sid]["Action"]
        actions = [actions] if isinstance(actions, str) else actions
        assert all(a.split(":")[1].startswith(("List", "Describe", "Register", "Deregister", "Put"))
                   for a in actions), actions
    every_action = {a for s in statements.values() for a in ([s["Action"]] if isinstance(s["Action"], str)
                                                             else s["Action"])}
    assert not any(a.endswith("*") for a in every_action)
    assert "sagemaker:DeleteEndpoint" not in every_action  # it never deletes the endpoint


def test_names_for_deployment_are_derived_from_the_prefix():
    names = Names("acme", "qa")
    assert names.model_prefix == "acme-qa-model"
    assert names.endpoint_config_prefix == "acme-qa-config"
    assert names.rollback_alarms == (
        "acme-qa-endpoint-5xx-errors",
        "acme-qa-endpoint-model-latency-p99",
        "acme-qa-endpoint-invocation-errors",
    )
