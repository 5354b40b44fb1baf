"""MonitoringStack: the scheduled monitoring pipeline, alarms on the monitors' metrics with thresholds
from settings, the dashboard, the drift-triggered retraining rule and Lambda, and IAM scope."""

from __future__ import annotations

import json

import aws_cdk as cdk
import pytest
from aws_cdk import aws_kms as kms
from aws_cdk.assertions import Match, Template
from cdk_helpers import build_app, project_context
from moto.events.models import EventPattern

from contract import monitoring_metrics as mm
from contract.naming import Names
from contract.settings import TrainingSettings
from pipeline_code.training_pipeline import render_training_pipeline
from stacks.constructs.monitoring_alarms import no_data_evaluation_periods
from stacks.constructs.monitoring_schedule import MonitoringSchedule, schedule_period_seconds
from stacks.constructs.rendered_pipeline import PLACEHOLDERS, placeholder_locations
from stacks.functions.retrain_guard.function import retrain_event_pattern
from stacks.monitoring_stack import schedule_parameters, window_hours

NAMES = Names("dogbreeds", "dev")
# Settings that differ from every default, so a hard-coded threshold cannot pass.
CUSTOM_MONITORING = {
    "enabled": True,
    "schedule": "rate(30 minutes)",
    "psi_threshold": 0.35,
    "prediction_distance_threshold": 0.15,
    "accuracy_threshold": 0.82,
    "retrain_min_interval_hours": 6,
}


def _app_with(monitoring: dict) -> cdk.Stack:
    context = project_context()
    context["environments"]["dev"]["monitoring"] = monitoring
    if not monitoring.get("enabled", True):  # staging then cannot gate its promotions on accuracy
        context["environments"]["staging"]["promotion"]["live_accuracy_gate"] = False
    _, stacks = build_app("dev", context=context)
    return stacks.monitoring


@pytest.fixture(scope="module")
def template() -> Template:
    return Template.from_stack(_app_with(CUSTOM_MONITORING))


def _one(template: Template, resource_type: str, props: dict | None = None) -> dict:
    found = template.find_resources(resource_type, {"Properties": props} if props else None)
    assert len(found) == 1, f"expected one {resource_type} matching {props}, found {len(found)}"
    return next(iter(found.values()))["Properties"]


def _text(value) -> str:
    return json.dumps(value)


def test_schedule_starts_the_monitoring_pipeline_on_the_configured_expression(template):
    pipeline = _one(template, "AWS::SageMaker::Pipeline")
    assert pipeline["PipelineName"] == NAMES.monitoring_pipeline
    schedule = _one(template, "AWS::Scheduler::Schedule")
    assert schedule["ScheduleExpression"] == "rate(30 minutes)"
    assert schedule["State"] == "ENABLED"
    assert "Fn::ImportValue" in _text(schedule["KmsKeyArn"])  # the project key from storage
    target = schedule["Target"]
    assert f":pipeline/{NAMES.monitoring_pipeline}" in _text(target["Arn"])
    assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    # Each run monitors this endpoint; a 30-minute schedule re-reads the last (whole) hour.
    assert target["SageMakerPipelineParameters"]["PipelineParameterList"] == [
        {"Name": "EndpointName", "Value": NAMES.endpoint},
        {"Name": "WindowHours", "Value": "1"},
    ]


def test_the_shipped_pipeline_is_the_monitoring_definition_with_settings_thresholds(template):
    pipeline = _one(template, "AWS::SageMaker::Pipeline")
    parts = pipeline["PipelineDefinition"]["PipelineDefinitionBody"]["Fn::Join"][1]
    literal = "".join(p for p in parts if isinstance(p, str))
    assert '"Name":"DataQuality"' in literal and '"Name":"ModelQuality"' in literal
    assert '"DefaultValue":0.35,"Name":"PsiThreshold"' in literal  # monitoring.psi_threshold
    for placeholder in PLACEHOLDERS.values():
        assert placeholder not in literal
    # The training image's registry is not needed by CPU-only monitoring steps.
    assert "pytorch-training:2.8.0-gpu" not in json.dumps(parts)


def test_scheduler_role_may_start_only_the_monitoring_pipeline(template):
    schedule = _one(template, "AWS::Scheduler::Schedule")
    role_id = schedule["Target"]["RoleArn"]["Fn::GetAtt"][0]
    role = template.to_json()["Resources"][role_id]["Properties"]
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert "aws:SourceAccount" in trust["Condition"]["StringEquals"]
    policy = _one(template, "AWS::IAM::Policy", {"Roles": [{"Ref": role_id}]})
    statements = policy["PolicyDocument"]["Statement"]
    assert {s["Action"] for s in statements} == {"sagemaker:StartPipelineExecution", "kms:Decrypt"}
    [start] = [s for s in statements if s["Action"] == "sagemaker:StartPipelineExecution"]
    assert f':pipeline/{NAMES.monitoring_pipeline}"' in _text(start["Resource"])


def _alarm(template: Template, name: str) -> dict:
    return _one(template, "AWS::CloudWatch::Alarm", {"AlarmName": name})


@pytest.mark.parametrize(
    ("alarm", "metric", "monitor", "threshold", "operator", "missing"),
    [
        ("feature-drift", mm.DRIFTED_FEATURES, mm.MONITOR_DATA_QUALITY, 1, "GreaterThanOrEqualToThreshold",
         "notBreaching"),
        ("prediction-drift", mm.PREDICTION_DISTANCE, mm.MONITOR_DATA_QUALITY, 0.15, "GreaterThanThreshold",
         "notBreaching"),
        ("accuracy-low", mm.ACCURACY, mm.MONITOR_MODEL_QUALITY, 0.82, "LessThanThreshold", "notBreaching"),
        ("no-capture-data", mm.RECORDS_ANALYSED, mm.MONITOR_DATA_QUALITY, 1, "LessThanThreshold",
         "breaching"),
    ],
)
def test_monitor_alarms_use_contract_metrics_and_settings_thresholds(
    template, alarm, metric, monitor, threshold, operator, missing
):
    props = _alarm(template, f"{NAMES.base}-monitoring-{alarm}")
    assert props["MetricName"] == metric
    assert props["Namespace"] == f"{NAMES.project}/{NAMES.env}"
    assert sorted(props["Dimensions"], key=lambda d: d["Name"]) == [
        {"Name": mm.DIMENSION_ENDPOINT, "Value": NAMES.endpoint},
        {"Name": mm.DIMENSION_MONITOR, "Value": monitor},
    ]
    assert props["Threshold"] == threshold
    assert props["ComparisonOperator"] == operator
    assert props["TreatMissingData"] == missing
    assert props["Period"] == 1800  # one monitoring run per period: rate(30 minutes)
    # Only "no data" waits for a second empty period; a drift or accuracy verdict acts at once.
    assert props["EvaluationPeriods"] == props["DatapointsToAlarm"] == (2 if missing == "breaching" else 1)
    assert "AlertsTopic" in _text(props["AlarmActions"])


def test_failed_monitoring_executions_alarm_and_notify(template):
    props = _alarm(template, f"{NAMES.base}-monitoring-failed")
    assert props["Namespace"] == "AWS/Sagemaker/ModelBuildingPipeline"
    assert props["MetricName"] == "ExecutionFailed"
    assert props["Dimensions"] == [{"Name": "PipelineName", "Value": NAMES.monitoring_pipeline}]
    assert "AlertsTopic" in _text(props["AlarmActions"])
    rule = _one(template, "AWS::Events::Rule", {"Name": f"{NAMES.base}-monitoring-failed"})
    pattern = rule["EventPattern"]
    assert pattern["detail-type"] == ["SageMaker Model Building Pipeline Execution Status Change"]
    assert pattern["detail"]["currentPipelineExecutionStatus"] == ["Failed"]
    assert f":pipeline/{NAMES.monitoring_pipeline}" in _text(pattern["detail"]["pipelineArn"])
    assert "AlertsTopic" in _text(rule["Targets"])


def test_dashboard_shows_endpoint_health_drift_quality_and_alarms(template):
    dashboard = _one(template, "AWS::CloudWatch::Dashboard")
    assert dashboard["DashboardName"] == f"{NAMES.base}-monitoring"
    body = "".join(p for p in dashboard["DashboardBody"]["Fn::Join"][1] if isinstance(p, str))
    for title in (
        "Invocations", "Model latency", "Errors", "CPU and memory", "Drift per feature (PSI)",
        "Accuracy and F1", "Ground-truth coverage", "Alarm states",
    ):
        assert f'"title":"{title}' in body, title
    for fragment in (
        '"AWS/SageMaker","ModelLatency"', '"stat":"p50"', '"stat":"p99"', "Invocation4XXErrors",
        "Invocation5XXErrors", '"/aws/sagemaker/Endpoints","CPUUtilization"', "MemoryUtilization",
        mm.MACRO_F1, mm.GROUND_TRUTH_COVERAGE,
        f'SEARCH(\'{{dogbreeds/dev,Endpoint,Feature,Monitor}} MetricName=\\"{mm.FEATURE_PSI}\\"',
    ):
        assert fragment in body, fragment
    # The alarm status widget lists all five alarms (by ARN, so tokens in the body).
    referenced = {
        p["Fn::GetAtt"][0] for p in dashboard["DashboardBody"]["Fn::Join"][1] if isinstance(p, dict)
        and "Fn::GetAtt" in p
    }
    assert referenced == set(template.find_resources("AWS::CloudWatch::Alarm"))
    for name in NAMES.rollback_alarms:  # the deployment stack's alarms, by name
        assert f":alarm:{name}" in body


def _alarm_event(name: str, state: str = "ALARM") -> dict:
    return {
        "version": "0", "id": "1", "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch", "account": "123456789012", "time": "2026-11-27T10:00:00Z",
        "region": "eu-west-1", "resources": [],
        "detail": {"alarmName": name, "state": {"value": state}},
    }


def test_retrain_rule_fires_on_drift_and_quality_alarms_only(template):
    rule = _one(template, "AWS::Events::Rule", {"Name": f"{NAMES.base}-retrain-on-alarm"})
    pattern = EventPattern.load(json.dumps(rule["EventPattern"]))
    for alarm in ("feature-drift", "prediction-drift", "accuracy-low"):
        assert pattern.matches_event(_alarm_event(f"{NAMES.base}-monitoring-{alarm}"))
    assert not pattern.matches_event(_alarm_event(f"{NAMES.base}-monitoring-feature-drift", "OK"))
    # Plumbing problems alert people; retraining would not fix them.
    assert not pattern.matches_event(_alarm_event(f"{NAMES.base}-monitoring-no-capture-data"))
    assert not pattern.matches_event(_alarm_event(f"{NAMES.base}-monitoring-failed"))
    assert rule["Targets"][0]["DeadLetterConfig"]


def test_retrain_guard_runs_alone_with_a_dlq_and_settings_from_the_stack(template, retrain_guard):
    function = _one(template, "AWS::Lambda::Function")
    assert function["ReservedConcurrentExecutions"] == 1
    environment = function["Environment"]["Variables"]
    assert sorted(environment) == sorted(retrain_guard.ENVIRONMENT_VARIABLES)
    assert environment["RETRAIN_PIPELINE_NAME"] == NAMES.training_pipeline
    assert environment["RETRAIN_MIN_INTERVAL_HOURS"] == "6"
    config = retrain_guard.GuardConfig.from_environment(environment)
    assert config.trigger_alarms == {
        f"{NAMES.base}-monitoring-{a}" for a in ("feature-drift", "prediction-drift", "accuracy-low")
    }
    invoke_config = _one(template, "AWS::Lambda::EventInvokeConfig")
    assert "DeadLetterQueue" in _text(invoke_config["DestinationConfig"]["OnFailure"])
    policy = _one(template, "AWS::IAM::Policy", {"PolicyName": f"{NAMES.base}-retrain-guard"})
    [statement] = policy["PolicyDocument"]["Statement"]
    assert sorted(statement["Action"]) == [
        "sagemaker:ListPipelineExecutions", "sagemaker:StartPipelineExecution"
    ]
    assert f':pipeline/{NAMES.training_pipeline}"' in _text(statement["Resource"])


def test_monitoring_jobs_may_read_only_this_environments_model_chain(template):
    policy = _one(template, "AWS::IAM::Policy", {"PolicyName": f"{NAMES.base}-monitoring-jobs"})
    assert "sagemaker-execution" in _text(policy["Roles"]) or "ImportValue" in _text(policy["Roles"])
    statements = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    chain = statements["ResolveLiveModelChain"]
    assert set(chain["Action"]) == {
        "sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig", "sagemaker:DescribeModel",
        "sagemaker:ListTags",
    }
    resources = _text(chain["Resource"])
    assert f":endpoint/{NAMES.endpoint}" in resources
    assert f":endpoint-config/{NAMES.endpoint_config_prefix}-*" in resources
    assert f":model/{NAMES.model_prefix}-*" in resources
    package = _text(statements["ReadLiveModelPackage"]["Resource"])
    assert f":model-package/{NAMES.model_package_group}/*" in package
    # The only unscoped action is a List, which IAM cannot scope.
    unscoped = [s["Action"] for s in statements.values() if s["Resource"] == "*"]
    assert unscoped == ["sagemaker:ListModelPackages"]
    for statement in statements.values():
        actions = [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        assert not any(action.endswith("*") for action in actions)


def test_disabled_monitoring_keeps_the_dashboard_and_drops_schedule_alarms_and_retraining():
    template = Template.from_stack(_app_with({"enabled": False}))
    template.resource_count_is("AWS::Scheduler::Schedule", 0)
    template.resource_count_is("AWS::CloudWatch::Alarm", 0)
    template.resource_count_is("AWS::Lambda::Function", 0)
    template.resource_count_is("AWS::CloudWatch::Dashboard", 1)
    template.resource_count_is("AWS::SageMaker::Pipeline", 1)  # can still be started by hand


def test_retrain_on_drift_off_keeps_alarms_without_the_guard():
    template = Template.from_stack(_app_with({"retrain_on_drift": False}))
    template.resource_count_is("AWS::CloudWatch::Alarm", 5)
    template.resource_count_is("AWS::Lambda::Function", 0)
    template.has_resource_properties("AWS::Scheduler::Schedule", {"ScheduleExpression": "rate(1 hour)"})
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm", {"AlarmName": Match.string_like_regexp("feature-drift$"), "Period": 3600}
    )


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [("rate(1 minute)", 300), ("rate(90 minutes)", 5400), ("rate(1 hour)", 3600),
     ("rate(1 day)", 86400), ("rate(1440 minutes)", 86400)],
)
def test_alarm_period_follows_the_schedule_within_cloudwatch_limits(expression, seconds):
    assert schedule_period_seconds(expression) == seconds


def test_unknown_schedule_is_rejected_with_the_allowed_forms():
    for expression in ("every hour", "cron(0 * * * ? *)", "rate(1 hour)\n"):
        with pytest.raises(ValueError, match=r"must be a fixed EventBridge Scheduler rate"):
            schedule_period_seconds(expression)


@pytest.mark.parametrize("expression", ["rate(3 days)", "rate(25 hours)"])
def test_schedule_over_a_day_is_refused_rather_than_clamped(expression):
    with pytest.raises(ValueError, match=r"longer than a day"):
        schedule_period_seconds(expression)


@pytest.fixture(scope="module")
def training_definition() -> str:
    return render_training_pipeline(placeholder_locations(), TrainingSettings(), NAMES)


def _schedule_stack(definition: str, parameters: dict[str, str]) -> Template:
    stack = cdk.Stack(cdk.App(), "Bare")
    MonitoringSchedule(
        stack, "Schedule", names=NAMES, expression="rate(1 hour)", pipeline_name="p",
        definition=definition, parameters=parameters, key=kms.Key(stack, "Key"),
    )
    return Template.from_stack(stack)


def test_schedule_passes_declared_pipeline_parameters(training_definition):
    template = _schedule_stack(training_definition, {"Epochs": "3", "Backbone": "resnet50"})
    target = _one(template, "AWS::Scheduler::Schedule")["Target"]
    assert target["SageMakerPipelineParameters"]["PipelineParameterList"] == [
        {"Name": "Backbone", "Value": "resnet50"}, {"Name": "Epochs", "Value": "3"}
    ]


def test_undeclared_schedule_parameter_fails_synth_naming_the_declared_ones(training_definition):
    with pytest.raises(ValueError, match=r"\['WindowHourz'\] are not declared.*'Epochs'"):
        _schedule_stack(training_definition, {"WindowHourz": "1"})


def test_schedule_parameters_only_name_declared_parameters(training_definition):
    assert schedule_parameters(NAMES, training_definition, 3600) == {}
    declared = json.loads(training_definition)
    declared["Parameters"].append({"Name": "EndpointName", "Type": "String", "DefaultValue": ""})
    assert schedule_parameters(NAMES, json.dumps(declared), 3600) == {"EndpointName": NAMES.endpoint}
    declared["Parameters"].append({"Name": "WindowHours", "Type": "Integer", "DefaultValue": 1})
    assert schedule_parameters(NAMES, json.dumps(declared), 6 * 3600)["WindowHours"] == "6"


@pytest.mark.parametrize(("period", "hours"), [(300, 1), (3600, 1), (5400, 2), (86400, 24)])
def test_each_run_reads_the_capture_since_the_previous_run(period, hours):
    assert window_hours(period) == hours


@pytest.mark.parametrize(("period", "periods"), [(1800, 2), (43200, 2), (86400, 1)])
def test_no_data_alarm_stays_within_cloudwatchs_evaluation_limit(period, periods):
    assert no_data_evaluation_periods(period) == periods


def test_retrain_event_pattern_is_sorted_and_alarm_only():
    pattern = retrain_event_pattern(["b", "a"])
    assert pattern["detail"] == {"alarmName": ["a", "b"], "state": {"value": ["ALARM"]}}
