"""DeploymentStack: the approval rule's exact pattern, the Lambda's wiring and scoped permissions,
and alarms named as the Lambda names them in every rollout."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Template
from cdk_helpers import build_app

from contract import environment_variables
from contract.naming import Names
from stacks.constructs import deploy_alarms, deployment_dashboard, endpoint_alarms


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


def test_lambda_environment_is_exactly_what_the_handler_reads(dev, prod, deploy_config):
    for stacks, template in (dev, prod):
        env = _function(template)["Environment"]["Variables"]
        assert set(env) == set(deploy_config.ENVIRONMENT_VARIABLES)
        assert sorted(deploy_config.ENVIRONMENT_VARIABLES) == sorted(environment_variables.DEPLOY_FUNCTION)
        assert env["DEPLOY_ROLLBACK_ALARMS"].split(",") == list(stacks.names.rollback_alarms)
    prod_env = _function(prod[1])["Environment"]["Variables"]
    assert prod_env["DEPLOY_CANARY_PERCENT"] == "10" and prod_env["DEPLOY_CANARY_WAIT_SECONDS"] == "900"
    assert prod_env["DEPLOY_INITIAL_INSTANCE_COUNT"] == "2" and prod_env["DEPLOY_MAX_INSTANCES"] == "6"


def _alarms(template: Template) -> dict[str, dict]:
    return {
        a["Properties"]["AlarmName"]: a["Properties"]
        for a in template.find_resources("AWS::CloudWatch::Alarm").values()
    }


def test_alarms_exist_with_the_names_the_lambda_passes(dev):
    stacks, template = dev
    alarms = _alarms(template)
    names = stacks.names
    assert set(alarms) == {*names.rollback_alarms, names.deploy_dead_letter_alarm, names.deploy_errors_alarm}
    alarms = {name: alarms[name] for name in names.rollback_alarms}
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


def test_lambda_permissions_are_scoped_to_this_environment(dev, endpoint_autoscaling):
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
    autoscaling = endpoint_autoscaling
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


# ---- the deployment dashboard and the alarms on the deploy path -----------------------------------

LOG_GROUP = "/aws/lambda/dogbreeds-dev-deploy-endpoint"


def _token(part: dict) -> str:
    """An intrinsic in a Fn::Join, as a readable placeholder: ${Ref:Id}, ${GetAtt:Id.Attr}."""
    if "Ref" in part:
        return f"${{Ref:{part['Ref']}}}"
    if "Fn::GetAtt" in part:
        resource, attribute = part["Fn::GetAtt"]
        return f"${{GetAtt:{resource}.{attribute}}}"
    raise AssertionError(f"unexpected intrinsic in the dashboard body: {part}")


def _logical_id(template: Template, resource_type: str, **properties: object) -> str:
    [found] = [
        logical_id
        for logical_id, resource in template.find_resources(resource_type).items()
        if all(resource["Properties"].get(k) == v for k, v in properties.items())
    ]
    return found


@pytest.fixture(scope="module")
def dashboard(dev) -> dict:
    """The deployment dashboard's body as JSON, widgets by title."""
    stacks, template = dev
    [resource] = template.find_resources("AWS::CloudWatch::Dashboard").values()
    properties = resource["Properties"]
    assert properties["DashboardName"] == stacks.names.deployment_dashboard == "dogbreeds-dev-deployment"
    parts = properties["DashboardBody"]["Fn::Join"][1]
    body = json.loads("".join(p if isinstance(p, str) else _token(p) for p in parts))
    widgets = {w["properties"].get("title"): w for w in body["widgets"]}
    assert len(widgets) == len(body["widgets"]), "two widgets share a title"
    return widgets


def _metrics(widget: dict) -> list[list]:
    """Each metric line without its rendering options (the trailing dict)."""
    return [line[:-1] if isinstance(line[-1], dict) else line for line in widget["properties"]["metrics"]]


def test_dashboard_shows_the_live_model_version_the_lambda_publishes(dashboard, dev, deploy_metrics):
    stacks, _ = dev
    # The dashboard reads what deploy_metrics.py writes, in the namespace the role may write.
    assert deployment_dashboard.LIVE_MODEL_VERSION == deploy_metrics.LIVE_MODEL_VERSION
    assert deployment_dashboard.DIMENSION_ENDPOINT == deploy_metrics.DIMENSION_ENDPOINT
    expected = [["dogbreeds/dev/deployment", "LiveModelVersion", "EndpointName", "dogbreeds-dev-endpoint"]]
    assert stacks.names.deployment_metric_namespace == "dogbreeds/dev/deployment"
    views = {"Live model version (metric)": "singleValue", "Live model version over time": "timeSeries"}
    for title, view in views.items():
        widget = dashboard[title]
        assert widget["properties"]["view"] == view
        assert _metrics(widget) == expected
        assert widget["properties"]["metrics"][0][-1]["stat"] == "Maximum"


def test_dashboard_tables_the_deploy_lambdas_decisions_from_its_log_group(dashboard, dev, deploy_logging):
    _, template = dev
    log_group = _logical_id(template, "AWS::Logs::LogGroup", LogGroupName=LOG_GROUP)
    events = dashboard["Deployment events (deploy Lambda decisions)"]["properties"]
    assert events["view"] == "table"
    source, query = events["query"].split(" | ", 1)
    assert source == f"SOURCE '${{Ref:{log_group}}}'"
    field = deploy_logging.DEPLOYMENT_FIELD
    assert f"filter ispresent({field})" in query and "sort @timestamp desc" in query
    [columns] = [line for line in query.splitlines() if line.startswith("fields ")]
    assert columns.removeprefix("fields ").split(", ") == [
        "@timestamp", field, "version", "previous_version", "rolled_back_version", "strategy",
        "canary_percent", "canary_wait_seconds", "baking_seconds", "reason", "message",
    ]
    live = dashboard["Live model version (deploy log)"]["properties"]
    assert live["query"].startswith(f"SOURCE '${{Ref:{log_group}}}' | ")
    assert f"'{deploy_logging.COMPLETED}', '{deploy_logging.ROLLED_BACK}'" in live["query"]
    assert "latest(version)" in live["query"]


def test_dashboard_graphs_lambda_errors_throttles_and_the_dead_letter_queue(dashboard, dev):
    _, template = dev
    function = _logical_id(template, "AWS::Lambda::Function", FunctionName="dogbreeds-dev-deploy-endpoint")
    queue = _logical_id(template, "AWS::SQS::Queue", QueueName="dogbreeds-dev-deploy-endpoint-dlq")
    lambda_widget = dashboard["Deploy Lambda: invocations, errors, retries, throttles"]
    lines = _metrics(lambda_widget)
    for metric in ("Invocations", "Errors", "Throttles"):
        assert ["AWS/Lambda", metric, "FunctionName", f"${{Ref:{function}}}"] in lines, metric
    assert ["dogbreeds/dev/deployment", deploy_alarms.RETRIES_METRIC] in lines
    depth = dashboard["Dead-letter queue depth (messages visible)"]
    assert _metrics(depth) == [
        ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", f"${{GetAtt:{queue}.QueueName}}"]
    ]
    [line] = depth["properties"]["annotations"]["horizontal"]
    assert line["value"] == _alarms(template)["dogbreeds-dev-deploy-endpoint-dlq-not-empty"]["Threshold"]


@pytest.mark.parametrize(
    ("title", "alarm", "constant"),
    [
        ("Model latency p99 (microseconds)", "dogbreeds-dev-endpoint-model-latency-p99",
         endpoint_alarms.MODEL_LATENCY_P99_MICROSECONDS),
        ("Invocation model errors per minute", "dogbreeds-dev-endpoint-invocation-errors",
         endpoint_alarms.MODEL_ERRORS_PER_MINUTE),
        ("5XX errors per minute", "dogbreeds-dev-endpoint-5xx-errors",
         endpoint_alarms.SERVER_ERRORS_PER_MINUTE),
    ],
)
def test_rollback_metrics_are_drawn_under_their_alarms_threshold(dashboard, dev, title, alarm, constant):
    _, template = dev
    props = _alarms(template)[alarm]
    widget = dashboard[title]
    dimensions = [x for d in props["Dimensions"] for x in (d["Name"], d["Value"])]
    assert _metrics(widget) == [[props["Namespace"], props["MetricName"], *dimensions]]
    options = widget["properties"]["metrics"][0][-1]
    assert options["stat"] == (props.get("Statistic") or props.get("ExtendedStatistic"))
    assert options["period"] == props["Period"] == 60
    [line] = widget["properties"]["annotations"]["horizontal"]
    # One source of truth: the line is where the alarm fires, from the constant the alarm uses.
    assert line["value"] == props["Threshold"] == constant


def test_latency_line_is_the_alarm_threshold_even_when_the_constant_changes(monkeypatch):
    from cdk_helpers import build_app

    monkeypatch.setattr(endpoint_alarms, "MODEL_LATENCY_P99_MICROSECONDS", 1_234_567)
    monkeypatch.setattr(deployment_dashboard, "MODEL_LATENCY_P99_MICROSECONDS", 1_234_567)
    _, stacks = build_app("dev")
    template = Template.from_stack(stacks.deployment)
    assert _alarms(template)["dogbreeds-dev-endpoint-model-latency-p99"]["Threshold"] == 1_234_567
    [resource] = template.find_resources("AWS::CloudWatch::Dashboard").values()
    body = "".join(p for p in resource["Properties"]["DashboardBody"]["Fn::Join"][1] if isinstance(p, str))
    assert '{"value":1234567,' in body


def test_alarm_status_widget_lists_every_deploy_path_alarm(dashboard, dev):
    stacks, template = dev
    widget = dashboard["Alarm states (rollback, dead-letter queue, deploy Lambda errors)"]
    listed = widget["properties"]["alarms"]
    names = stacks.names
    expected = [
        *names.rollback_alarms, names.deploy_dead_letter_alarm, names.deploy_errors_alarm,
    ]
    ids = [_logical_id(template, "AWS::CloudWatch::Alarm", AlarmName=name) for name in expected]
    assert listed == [f"${{GetAtt:{logical_id}.Arn}}" for logical_id in ids]


def test_dead_letter_queue_alarm_watches_the_queue_and_alerts(dev):
    stacks, template = dev
    queue = _logical_id(template, "AWS::SQS::Queue", QueueName="dogbreeds-dev-deploy-endpoint-dlq")
    alarm = _alarms(template)["dogbreeds-dev-deploy-endpoint-dlq-not-empty"]
    assert alarm["Namespace"] == "AWS/SQS" and alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}]
    assert alarm["Statistic"] == "Maximum"
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
    assert alarm["EvaluationPeriods"] == 1 and alarm["TreatMissingData"] == "notBreaching"
    assert "AlertsTopic" in json.dumps(alarm["AlarmActions"])
    # The alerts topic takes alarms named <project>-<env>-* only.
    assert stacks.names.deploy_dead_letter_alarm.startswith(f"{stacks.names.base}-")


def test_errors_alarm_counts_failures_but_not_deliberate_busy_retries(dev, deploy_logging):
    stacks, template = dev
    function = _logical_id(template, "AWS::Lambda::Function", FunctionName="dogbreeds-dev-deploy-endpoint")
    alarm = _alarms(template)["dogbreeds-dev-deploy-endpoint-errors"]
    metrics = {m["Id"]: m for m in alarm["Metrics"]}
    assert metrics["expr_1"]["Expression"] == "FILL(errors, 0) - FILL(retries, 0)"
    errors = metrics["errors"]["MetricStat"]
    assert errors["Metric"] == {
        "Namespace": "AWS/Lambda", "MetricName": "Errors",
        "Dimensions": [{"Name": "FunctionName", "Value": {"Ref": function}}],
    }
    retries = metrics["retries"]["MetricStat"]["Metric"]
    assert retries == {"Namespace": stacks.names.deployment_metric_namespace, "MetricName": "DeployRetries"}
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
    assert "AlertsTopic" in json.dumps(alarm["AlarmActions"])
    # The retries metric counts exactly the lines the Lambda writes when the endpoint is busy.
    [metric_filter] = template.find_resources("AWS::Logs::MetricFilter").values()
    props = metric_filter["Properties"]
    log_group = _logical_id(template, "AWS::Logs::LogGroup", LogGroupName=LOG_GROUP)
    assert props["LogGroupName"] == {"Ref": log_group}
    assert props["FilterPattern"] == (
        f'{{ $.{deploy_logging.DEPLOYMENT_FIELD} = "{deploy_logging.RETRYING}" }}'
    )
    assert props["MetricTransformations"] == [
        {"MetricName": "DeployRetries", "MetricNamespace": "dogbreeds/dev/deployment", "MetricValue": "1"}
    ]


def test_every_alarm_says_what_it_means_and_what_to_do(dev):
    _, template = dev
    for name, alarm in _alarms(template).items():
        description = alarm["AlarmDescription"]
        assert len(description) <= 1024, name  # CloudFormation's AlarmDescription limit
        meaning, todo = description.split(" What to do: ")
        assert len(meaning) > 80 and len(todo) > 80, name
        if name.startswith("dogbreeds-dev-endpoint-"):
            assert "rolls it back" in meaning and "/aws/sagemaker/Endpoints/dogbreeds-dev-endpoint" in todo
            assert "dogbreeds models reject N --env dev" in todo
        else:
            assert "/aws/lambda/dogbreeds-dev-deploy-endpoint" in todo
            assert "dogbreeds models deploy-log --env dev" in todo


def test_an_alarm_description_over_cloudformations_limit_fails_synth():
    with pytest.raises(ValueError, match="over 1024"):
        endpoint_alarms.alarm_description("x" * 1000, "y" * 100)
