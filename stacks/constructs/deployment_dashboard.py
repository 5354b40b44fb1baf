"""The deployment dashboard ``<project>-<env>-deployment``: a rollout at a glance.

A dashboard of its own in the deployment stack, not rows in the monitoring dashboard: everything it
shows (the deploy Lambda, its dead-letter queue and log group, the rollback alarms) lives in this
stack, so widgets bind to the resources themselves instead of names rebuilt in another stack; it
exists whenever the deploy path does, whatever ``monitoring.enabled`` says; and it is what to watch
while a version rolls out, where the monitoring dashboard is for the days after.

Rows, top to bottom:

* alarm states: the three rollback alarms, the dead-letter queue alarm and the Lambda errors alarm;
* which model package version the endpoint serves: the latest ``LiveModelVersion`` value (the Lambda
  publishes it each time the endpoint becomes InService), the same from the Lambda's log, and its
  history;
* the Lambda's decisions (Logs Insights over its JSON lines that carry a ``deployment`` field:
  started, completed, rolled back, retrying, skipped, ignored, failed) with version and reason;
* the Lambda's invocations, errors, deliberate retries and throttles; the dead-letter queue's depth;
* the rollback alarms' metrics with each alarm's threshold drawn from the constant the alarm uses.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

from contract.deployment_metrics import COMPLETED, DIMENSION_ENDPOINT, LIVE_MODEL_VERSION, ROLLED_BACK
from contract.naming import Names
from contract.settings import EndpointSettings
from stacks.constructs.deploy_alarms import (
    DEAD_LETTER_MESSAGES,
    DEPLOYMENT_FIELD,
    FAILED_INVOCATIONS,
    DeployAlarms,
)
from stacks.constructs.endpoint_alarms import (
    MODEL_ERRORS_PER_MINUTE,
    MODEL_LATENCY_P99_MICROSECONDS,
    SERVER_ERRORS_PER_MINUTE,
    EndpointAlarms,
)
from stacks.functions.deploy_endpoint.function import DeployFunction

LIVE_VERSION_PERIOD = Duration.minutes(5)
# Columns of the deployment events table: fields of the Lambda's decision lines.
EVENT_FIELDS = (
    "@timestamp",
    DEPLOYMENT_FIELD,
    "version",
    "previous_version",
    "rolled_back_version",
    "strategy",
    "canary_percent",
    "canary_wait_seconds",
    "baking_seconds",
    "reason",
    "message",
)
EVENT_ROWS = 100


def deployment_events_query() -> str:
    """Logs Insights: every decision line, newest first."""
    return "\n".join(
        [
            f"fields {', '.join(EVENT_FIELDS)}",
            f"| filter ispresent({DEPLOYMENT_FIELD})",
            "| sort @timestamp desc",
            f"| limit {EVENT_ROWS}",
        ]
    )


def live_version_query() -> str:
    """Logs Insights: the version of the newest completed or rolled back line (what serves now)."""
    return "\n".join(
        [
            f"filter {DEPLOYMENT_FIELD} in ['{COMPLETED}', '{ROLLED_BACK}']",
            "| stats latest(version) as live_version, latest(@timestamp) as since, "
            f"latest({DEPLOYMENT_FIELD}) as outcome",
        ]
    )


class DeploymentDashboard(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: Names,
        endpoint: EndpointSettings,
        deploy: DeployFunction,
        deploy_alarms: DeployAlarms,
        endpoint_alarms: EndpointAlarms,
    ) -> None:
        super().__init__(scope, construct_id)
        log_groups = [deploy.log_group.log_group_name]
        live_version = cloudwatch.Metric(
            namespace=names.deployment_metric_namespace,
            metric_name=LIVE_MODEL_VERSION,
            dimensions_map={DIMENSION_ENDPOINT: names.endpoint},
            statistic="Maximum",
            period=LIVE_VERSION_PERIOD,
            label="Live model package version",
        )

        def threshold(value: float, label: str) -> cloudwatch.HorizontalAnnotation:
            return cloudwatch.HorizontalAnnotation(value=value, label=label, color="#d62728")

        def alarm_graph(alarm_name: str, title: str, value: float, label: str) -> cloudwatch.GraphWidget:
            # The alarm's own metric (same statistic and period) under the alarm's own threshold.
            alarm = endpoint_alarms.by_name[alarm_name]
            return cloudwatch.GraphWidget(
                title=title,
                left=[alarm.metric],
                left_annotations=[threshold(value, label)],
                left_y_axis=cloudwatch.YAxisProps(min=0),
                width=8,
                height=6,
            )

        if endpoint.kind == "realtime":
            rollout = (
                f"Updates are blue/green: {endpoint.canary_percent}% of capacity for "
                f"{endpoint.canary_wait_minutes} min (canary), then all traffic, the old fleet kept "
                f"{endpoint.termination_wait_minutes} min (baking). Any rollback alarm in ALARM during "
                "either rolls the update back."
            )
        else:
            rollout = "Serverless endpoint: updates shift all traffic at once (no canary, no rollback)."
        self.dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=names.deployment_dashboard,
            default_interval=Duration.days(14),
        )
        self.dashboard.add_widgets(
            cloudwatch.TextWidget(
                markdown=(
                    f"# {names.base}: deployments to `{names.endpoint}`\n"
                    f"Approving a version of `{names.model_package_group}` deploys it. {rollout} "
                    f"Deploy Lambda log: `/aws/lambda/{names.deploy_function}` "
                    f"(`dogbreeds models deploy-log --env {names.env}`); endpoint log: "
                    f"`/aws/sagemaker/Endpoints/{names.endpoint}`. Alarm descriptions say what to do."
                ),
                width=24,
                height=2,
            )
        )
        self.alarm_status = cloudwatch.AlarmStatusWidget(
            title="Alarm states (rollback, dead-letter queue, deploy Lambda errors)",
            alarms=[*endpoint_alarms.alarms, *deploy_alarms.alarms],
            width=24,
            height=3,
        )
        self.dashboard.add_widgets(self.alarm_status)
        self.dashboard.add_widgets(
            cloudwatch.SingleValueWidget(
                title="Live model version (metric)",
                metrics=[live_version],
                width=6,
                height=6,
            ),
            cloudwatch.LogQueryWidget(
                title="Live model version (deploy log)",
                log_group_names=log_groups,
                query_string=live_version_query(),
                view=cloudwatch.LogQueryVisualizationType.TABLE,
                width=6,
                height=6,
            ),
            cloudwatch.GraphWidget(
                title="Live model version over time",
                left=[live_version],
                left_y_axis=cloudwatch.YAxisProps(min=0, show_units=False),
                width=12,
                height=6,
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.LogQueryWidget(
                title="Deployment events (deploy Lambda decisions)",
                log_group_names=log_groups,
                query_string=deployment_events_query(),
                view=cloudwatch.LogQueryVisualizationType.TABLE,
                width=24,
                height=8,
            )
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Deploy Lambda: invocations, errors, retries, throttles",
                left=[
                    deploy_alarms.invocations,
                    deploy_alarms.errors,
                    deploy_alarms.retries,
                    deploy_alarms.throttles,
                ],
                right=[deploy_alarms.failures],
                right_annotations=[threshold(FAILED_INVOCATIONS, "errors alarm")],
                left_y_axis=cloudwatch.YAxisProps(min=0),
                right_y_axis=cloudwatch.YAxisProps(min=0),
                width=12,
                height=6,
            ),
            cloudwatch.GraphWidget(
                title="Dead-letter queue depth (messages visible)",
                left=[deploy_alarms.queue_depth],
                left_annotations=[threshold(DEAD_LETTER_MESSAGES, "dead-letter alarm")],
                left_y_axis=cloudwatch.YAxisProps(min=0),
                width=12,
                height=6,
            ),
        )
        self.dashboard.add_widgets(
            alarm_graph(
                names.endpoint_latency_alarm,
                "Model latency p99 (microseconds)",
                MODEL_LATENCY_P99_MICROSECONDS,
                "rollback threshold",
            ),
            alarm_graph(
                names.endpoint_invocation_errors_alarm,
                "Invocation model errors per minute",
                MODEL_ERRORS_PER_MINUTE,
                "rollback threshold",
            ),
            alarm_graph(
                names.endpoint_5xx_alarm,
                "5XX errors per minute",
                SERVER_ERRORS_PER_MINUTE,
                "rollback threshold",
            ),
        )
