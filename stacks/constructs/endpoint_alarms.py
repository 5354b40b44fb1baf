"""The endpoint's rollback guardrail alarms, and endpoint failure/rollout events to the alerts topic.

The deploy Lambda names these alarms in every blue/green update's AutoRollbackConfiguration: one in
ALARM while the canary or the full fleet bakes rolls the update back. Their names come from ``Names``,
so the Lambda (which gets them as an environment variable) and the alarms cannot drift apart.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_sns as sns
from constructs import Construct

from stacks.naming import PRODUCTION_VARIANT, Names

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
            (names.endpoint_5xx_alarm, metric("Invocation5XXErrors", "Sum"), SERVER_ERRORS_PER_MINUTE,
             "5XX responses from the endpoint"),
            (names.endpoint_latency_alarm, metric("ModelLatency", "p99"), MODEL_LATENCY_P99_MICROSECONDS,
             "p99 model latency above 2 s"),
            (names.endpoint_invocation_errors_alarm, metric("InvocationModelErrors", "Sum"),
             MODEL_ERRORS_PER_MINUTE, "model invocation errors"),
        ]
        self.alarms: list[cloudwatch.Alarm] = []
        for alarm_name, alarm_metric, threshold, what in specs:
            alarm = cloudwatch.Alarm(
                self,
                alarm_name.removeprefix(f"{names.endpoint}-").title().replace("-", ""),
                alarm_name=alarm_name,
                alarm_description=f"{what} on {names.endpoint}; rolls back a blue/green deployment",
                metric=alarm_metric,
                threshold=threshold,
                evaluation_periods=EVALUATION_PERIODS,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                # No traffic is not a failure: a quiet canary must be able to finish.
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            alarm.add_alarm_action(cloudwatch_actions.SnsAction(alerts_topic))
            self.alarms.append(alarm)

        # The endpoint failing, and every step of a guarded rollout (canary, baking, rollback), reach
        # the team through the environment's alerts topic.
        topic = targets.SnsTopic(alerts_topic)
        self.failure_rule = events.Rule(
            self,
            "EndpointFailedRule",
            rule_name=f"{names.base}-endpoint-failed",
            description=f"{names.endpoint} failed -> alerts topic",
            event_pattern=events.EventPattern(
                source=["aws.sagemaker"],
                detail_type=["SageMaker Endpoint State Change"],
                detail={"EndpointName": [names.endpoint], "EndpointStatus": FAILED_STATUSES},
            ),
            targets=[topic],
        )
        self.deployment_rule = events.Rule(
            self,
            "EndpointDeploymentRule",
            rule_name=f"{names.base}-endpoint-deployment",
            description=f"{names.endpoint} blue/green deployment progress and rollbacks -> alerts topic",
            event_pattern=events.EventPattern(
                source=["aws.sagemaker"],
                detail_type=["SageMaker Endpoint Deployment State Change"],
                detail={"EndpointName": [names.endpoint]},
            ),
            targets=[topic],
        )
