"""Alarms on the deploy Lambda itself: events in its dead-letter queue, and invocations that failed.

The rollback alarms (endpoint_alarms.py) watch the model; these watch the path that deploys it. An
event in the dead-letter queue is an approval or InService event nobody acted on, so the endpoint may
not serve what the registry says. A failed invocation is counted from Lambda's ``Errors`` minus the
invocations that fail on purpose: an endpoint mid-rollout makes the function raise so that Lambda
retries the event (``deployment=retrying`` log lines, counted by a metric filter), and those must not
wake anyone.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from contract.deployment_metrics import DEPLOYMENT_FIELD, RETRYING
from contract.naming import Names
from stacks.constructs.endpoint_alarms import alarm_description

PERIOD = Duration.minutes(5)
# Any message in the queue: every one is an event that was dropped after all retries.
DEAD_LETTER_MESSAGES = 1
# Any invocation that failed for a reason other than a busy endpoint.
FAILED_INVOCATIONS = 1
# Published by the metric filter into Names.deployment_metric_namespace.
RETRIES_METRIC = "DeployRetries"


class DeployAlarms(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: Names,
        function: lambda_.IFunction,
        log_group: logs.ILogGroup,
        dead_letter_queue: sqs.IQueue,
        alerts_topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        log = f"/aws/lambda/{names.deploy_function}"
        follow = f"dogbreeds models deploy-log --env {names.env}"

        depth = dead_letter_queue.metric_approximate_number_of_messages_visible(
            statistic="Maximum", period=PERIOD
        )
        # Labelled for the dashboard; the alarm takes the plain metric (a plain MetricName alarm).
        self.queue_depth = depth.with_(label="Messages in the dead-letter queue")
        self.dead_letter_alarm = cloudwatch.Alarm(
            self,
            "DeadLetterQueueNotEmpty",
            alarm_name=names.deploy_dead_letter_alarm,
            alarm_description=alarm_description(
                f"The deploy Lambda's dead-letter queue {names.deploy_dead_letter_queue} holds messages: "
                "an approval or endpoint InService event failed every retry and was not acted on, so "
                "the endpoint may not serve the version the registry approved.",
                f"read the deploy Lambda's log {log} ({follow}, or the deployment dashboard "
                f"{names.deployment_dashboard}'s Deployment events, deployment=failed) for the error, "
                "and the queue's messages for the events. Fix the cause (permissions, a Failed "
                "endpoint), then approve the version again, and purge the queue so the alarm clears.",
            ),
            metric=depth,
            threshold=DEAD_LETTER_MESSAGES,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            # SQS stops reporting an idle empty queue: no data is an empty queue.
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

        self.retry_filter = logs.MetricFilter(
            self,
            "RetriesFilter",
            log_group=log_group,
            filter_pattern=logs.FilterPattern.string_value(f"$.{DEPLOYMENT_FIELD}", "=", RETRYING),
            metric_namespace=names.deployment_metric_namespace,
            metric_name=RETRIES_METRIC,
            metric_value="1",
        )
        self.errors = function.metric_errors(statistic="Sum", period=PERIOD, label="Errors")
        self.throttles = function.metric_throttles(statistic="Sum", period=PERIOD, label="Throttles")
        self.invocations = function.metric_invocations(statistic="Sum", period=PERIOD, label="Invocations")
        self.retries = self.retry_filter.metric(
            statistic="Sum", period=PERIOD, label="Busy-endpoint retries (expected)"
        )
        self.failures = cloudwatch.MathExpression(
            expression="FILL(errors, 0) - FILL(retries, 0)",
            using_metrics={"errors": self.errors, "retries": self.retries},
            label="Failed invocations (errors that are not busy-endpoint retries)",
            period=PERIOD,
        )
        self.errors_alarm = cloudwatch.Alarm(
            self,
            "FunctionErrors",
            alarm_name=names.deploy_errors_alarm,
            alarm_description=alarm_description(
                f"The deploy Lambda {names.deploy_function} failed invocations (Errors, not counting "
                "deliberate retries while the endpoint is busy): a deployment step raised. Lambda "
                "retries the event twice, then sends it to the dead-letter queue "
                f"{names.deploy_dead_letter_queue}.",
                f"read the deployment=failed lines in {log} ({follow}, or the deployment dashboard "
                f"{names.deployment_dashboard}): the reason names the failing call. Access denied "
                "means the stack and the code disagree; throttling passes with the retries.",
            ),
            metric=self.failures,
            threshold=FAILED_INVOCATIONS,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.alarms = [self.dead_letter_alarm, self.errors_alarm]
        for alarm in self.alarms:
            alarm.add_alarm_action(cloudwatch_actions.SnsAction(alerts_topic))
