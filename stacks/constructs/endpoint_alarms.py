"""The endpoint's rollback guardrail alarms, and endpoint failure/rollout events to the alerts topic.

The deploy Lambda names these alarms in every blue/green update's AutoRollbackConfiguration: one in
ALARM while the canary or the full fleet bakes rolls the update back. Their names come from ``Names``,
so the Lambda (which gets them as an environment variable) and the alarms cannot drift apart. The
thresholds are module constants, so the deployment dashboard draws the same lines the alarms use.
Each description says what the alarm means and what to do; it reaches people in every notification.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_sns as sns
from constructs import Construct

from contract.events import ENDPOINT_DEPLOYMENT_STATE_CHANGE, ENDPOINT_STATE_CHANGE, SAGEMAKER_SOURCE
from contract.naming import PRODUCTION_VARIANT, Names

NAMESPACE = "AWS/SageMaker"
PERIOD = Duration.minutes(1)
# Any 5XX in two consecutive minutes: the container itself failed requests.
SERVER_ERRORS_PER_MINUTE = 1
# ModelLatency is reported in microseconds; a CPU ResNet18 answers well under a second.
MODEL_LATENCY_P99_MICROSECONDS = 2_000_000
# Requests the model container answered with anything but 2XX (includes timeouts).
MODEL_ERRORS_PER_MINUTE = 5
EVALUATION_PERIODS = 2

# What SageMaker reports for a failed endpoint; both spellings, since events use IN_SERVICE-style.
FAILED_STATUSES = ["FAILED", "Failed"]
# CloudFormation's limit on AlarmDescription.
MAX_DESCRIPTION = 1024


def alarm_description(meaning: str, todo: str) -> str:
    """What the alarm means, then what to do; refuses a text CloudFormation would reject."""
    text = f"{meaning} What to do: {todo}"
    if len(text) > MAX_DESCRIPTION:
        raise ValueError(f"alarm description is {len(text)} characters, over {MAX_DESCRIPTION}: {text}")
    return text


def rollback_alarm_descriptions(names: Names) -> dict[str, str]:
    """Per rollback alarm: what it means and what to do."""
    logs = f"/aws/sagemaker/Endpoints/{names.endpoint}"
    rolls_back = (
        "While a blue/green deployment is in progress (canary or baking), ALARM rolls it back to the "
        "previous endpoint config; the deployment dashboard "
        f"{names.deployment_dashboard} shows the live version and the deploy Lambda's decisions."
    )
    reject = (
        "If it started with a new version, reject that version (dogbreeds models reject N --env "
        f"{names.env}) so that no "
        "catch-up deploys it again."
    )
    return {
        names.endpoint_5xx_alarm: alarm_description(
            f"{names.endpoint} answered with 5XX errors (>= {SERVER_ERRORS_PER_MINUTE} a minute for "
            f"{EVALUATION_PERIODS} minutes): the model container or its instance failed requests. "
            + rolls_back,
            f"look at the endpoint's CloudWatch logs {logs} for the container's tracebacks (model "
            "load, out of memory). " + reject,
        ),
        names.endpoint_latency_alarm: alarm_description(
            f"p99 ModelLatency of {names.endpoint} was >= {MODEL_LATENCY_P99_MICROSECONDS:,} "
            f"microseconds ({MODEL_LATENCY_P99_MICROSECONDS / 1e6:g} s) for {EVALUATION_PERIODS} "
            "minutes: the model answers too slowly. " + rolls_back,
            f"compare the new version's latency with the old one's, and check CPU and memory on the "
            f"monitoring dashboard {names.dashboard} and the logs {logs}. Without a deployment, "
            "a traffic surge beyond autoscaling's maximum or an undersized instance type is the "
            "usual cause: raise endpoint.max_instances or the instance type. " + reject,
        ),
        names.endpoint_invocation_errors_alarm: alarm_description(
            f"{names.endpoint}'s model container answered >= {MODEL_ERRORS_PER_MINUTE} requests a "
            f"minute with a non-2XX status or a timeout (InvocationModelErrors) for "
            f"{EVALUATION_PERIODS} minutes. " + rolls_back,
            f"read the handler's errors in {logs}: images it cannot decode, a wrong content type "
            "from clients, or a model that fails to predict. " + reject,
        ),
    }


class EndpointAlarms(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, names: Names, alerts_topic: sns.ITopic
    ) -> None:
        super().__init__(scope, construct_id)
        dimensions = {"EndpointName": names.endpoint, "VariantName": PRODUCTION_VARIANT}

        def metric(name: str, statistic: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=NAMESPACE, metric_name=name, dimensions_map=dimensions,
                statistic=statistic, period=PERIOD,
            )

        specs = [
            (names.endpoint_5xx_alarm, metric("Invocation5XXErrors", "Sum"), SERVER_ERRORS_PER_MINUTE),
            (names.endpoint_latency_alarm, metric("ModelLatency", "p99"), MODEL_LATENCY_P99_MICROSECONDS),
            (names.endpoint_invocation_errors_alarm, metric("InvocationModelErrors", "Sum"),
             MODEL_ERRORS_PER_MINUTE),
        ]
        descriptions = rollback_alarm_descriptions(names)
        self.alarms: list[cloudwatch.Alarm] = []
        # By alarm name, for the dashboard's threshold lines.
        self.by_name: dict[str, cloudwatch.Alarm] = {}
        for alarm_name, alarm_metric, threshold in specs:
            alarm = cloudwatch.Alarm(
                self,
                alarm_name.removeprefix(f"{names.endpoint}-").title().replace("-", ""),
                alarm_name=alarm_name,
                alarm_description=descriptions[alarm_name],
                metric=alarm_metric,
                threshold=threshold,
                evaluation_periods=EVALUATION_PERIODS,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                # No traffic is not a failure: a quiet canary must be able to finish.
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            alarm.add_alarm_action(cloudwatch_actions.SnsAction(alerts_topic))
            self.alarms.append(alarm)
            self.by_name[alarm_name] = alarm

        # The endpoint failing, and every step of a guarded rollout (canary, baking, rollback), reach
        # the team through the environment's alerts topic.
        topic = targets.SnsTopic(alerts_topic)
        self.failure_rule = events.Rule(
            self,
            "EndpointFailedRule",
            rule_name=names.endpoint_failed_rule,
            description=f"{names.endpoint} failed -> alerts topic",
            event_pattern=events.EventPattern(
                source=[SAGEMAKER_SOURCE],
                detail_type=[ENDPOINT_STATE_CHANGE],
                detail={"EndpointName": [names.endpoint], "EndpointStatus": FAILED_STATUSES},
            ),
            targets=[topic],
        )
        self.deployment_rule = events.Rule(
            self,
            "EndpointDeploymentRule",
            rule_name=names.endpoint_deployment_rule,
            description=f"{names.endpoint} blue/green deployment progress and rollbacks -> alerts topic",
            event_pattern=events.EventPattern(
                source=[SAGEMAKER_SOURCE],
                detail_type=[ENDPOINT_DEPLOYMENT_STATE_CHANGE],
                detail={"EndpointName": [names.endpoint]},
            ),
            targets=[topic],
        )
