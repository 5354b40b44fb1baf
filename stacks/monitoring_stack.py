"""MonitoringStack: the monitoring pipeline and its schedule, alarms, dashboard and drift-triggered
retraining for one environment's endpoint.

SageMaker Model Monitor is closed to new customers, so the monitors are the project's own
processing jobs in a SageMaker pipeline (rendered at synth like the training pipeline), started by
EventBridge Scheduler. They publish CloudWatch metrics (names in ``monitoring_metrics``); alarms on
those metrics notify the storage stack's alerts topic, and drift or quality alarms may start the
training pipeline through the retrain guard Lambda.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_cdk import Aws, CfnOutput, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct

from contract.naming import Names
from contract.settings import EnvironmentSettings
from pipeline_code.render_cache import cached_render
from stacks.constructs.monitoring_alarms import MonitoringAlarms
from stacks.constructs.monitoring_dashboard import MonitoringDashboard
from stacks.constructs.monitoring_schedule import (
    MonitoringSchedule,
    declared_parameters,
    pipeline_arn,
    schedule_period_seconds,
)
from stacks.constructs.rendered_pipeline import RenderedPipeline, RenderFunction
from stacks.functions.retrain_guard.function import RetrainGuardFunction
from stacks.nag import acknowledge


def monitoring_render(settings: EnvironmentSettings, names: Names) -> RenderFunction:
    """The monitoring definition builder bound to this environment."""
    return lambda locations: cached_render(
        "pipeline_code.monitoring_pipeline:render_monitoring_pipeline", locations, settings.monitoring, names
    )


def window_hours(period_seconds: int) -> int:
    """Hours of capture each run reads: the time since the previous run, at least the one hour the
    monitors' hour-aligned windows allow (shorter schedules re-read the last hour)."""
    return max(1, -(-period_seconds // 3600))


def schedule_parameters(names: Names, definition: str, period_seconds: int) -> dict[str, str]:
    """What each scheduled run is told, limited to parameters the definition declares."""
    wanted = {"EndpointName": names.endpoint, "WindowHours": str(window_hours(period_seconds))}
    declared = declared_parameters(definition)
    return {name: value for name, value in wanted.items() if name in declared}


class MonitoringStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: Names,
        settings: EnvironmentSettings,
        bucket: s3.IBucket,
        key: kms.IKey,
        execution_role: iam.IRole,
        alerts_topic: sns.ITopic,
        render: RenderFunction | None = None,
        parameters: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        monitoring = settings.monitoring
        self.pipeline = RenderedPipeline(
            self,
            "MonitoringPipeline",
            pipeline_name=names.monitoring_pipeline,
            description=f"Data-quality and model-quality monitors of {names.endpoint}",
            render=render or monitoring_render(settings, names),
            bucket=bucket,
            key=key,
            execution_role=execution_role,
        )
        self.pipeline_arn = pipeline_arn(names.monitoring_pipeline)
        self.period_seconds = schedule_period_seconds(monitoring.schedule)
        self.job_policy = self._monitoring_job_policy(names, execution_role)

        self.schedule: MonitoringSchedule | None = None
        self.alarms: MonitoringAlarms | None = None
        self.retrain: RetrainGuardFunction | None = None
        if monitoring.enabled:
            self.schedule = MonitoringSchedule(
                self,
                "Schedule",
                names=names,
                expression=monitoring.schedule,
                pipeline_name=names.monitoring_pipeline,
                definition=self.pipeline.definition,
                parameters=(
                    parameters
                    if parameters is not None
                    else schedule_parameters(names, self.pipeline.definition, self.period_seconds)
                ),
                key=key,
            )
            self.schedule.node.add_dependency(self.pipeline.pipeline)
            self.alarms = MonitoringAlarms(
                self,
                "Alarms",
                names=names,
                settings=monitoring,
                period_seconds=self.period_seconds,
                monitoring_pipeline_name=names.monitoring_pipeline,
                monitoring_pipeline_arn=self.pipeline_arn,
                alerts_topic=alerts_topic,
            )
            # Without a training pipeline there is nothing to retrain (settings refuse an explicit
            # retrain_on_drift there; the default is ignored): retraining happens upstream.
            if monitoring.retrain_on_drift and settings.training.enabled:
                self.retrain = RetrainGuardFunction(
                    self,
                    "RetrainGuard",
                    names=names,
                    alarm_names=self.alarms.alarm_names.retrain_triggers,
                    min_interval_hours=monitoring.retrain_min_interval_hours,
                    key=key,
                    log_retention_days=settings.log_retention_days,
                    destroy_on_delete=settings.removal_policy == "destroy",
                )
        self.dashboard = MonitoringDashboard(
            self,
            "Dashboard",
            names=names,
            settings=monitoring,
            period_seconds=self.period_seconds,
            alarms=self.alarms.alarms if self.alarms else (),
        )
        CfnOutput(self, "MonitoringPipelineName", value=names.monitoring_pipeline)
        CfnOutput(self, "DashboardName", value=names.dashboard)

    def _monitoring_job_policy(self, names: Names, execution_role: iam.IRole) -> iam.Policy:
        """What the monitoring jobs add to the execution role: read the live model's chain
        (endpoint -> config -> model -> package) to find its baselines. S3 and PutMetricData are
        already granted by the storage stack."""
        arn = f"arn:{Aws.PARTITION}:sagemaker:{Aws.REGION}:{Aws.ACCOUNT_ID}"
        policy = iam.Policy(
            self,
            "MonitoringJobPolicy",
            policy_name=names.monitoring_jobs_policy,
            roles=[execution_role],
            statements=[
                iam.PolicyStatement(
                    sid="ResolveLiveModelChain",
                    actions=[
                        "sagemaker:DescribeEndpoint",
                        "sagemaker:DescribeEndpointConfig",
                        "sagemaker:DescribeModel",
                        "sagemaker:ListTags",
                    ],
                    resources=[
                        f"{arn}:endpoint/{names.endpoint}",
                        f"{arn}:endpoint-config/{names.endpoint_config_prefix}-*",
                        f"{arn}:model/{names.model_prefix}-*",
                    ],
                ),
                iam.PolicyStatement(
                    sid="ReadLiveModelPackage",
                    actions=["sagemaker:DescribeModelPackage"],
                    resources=[f"{arn}:model-package/{names.model_package_group}/*"],
                ),
                iam.PolicyStatement(
                    # Fallback when the model names no package: find it in the group by its model
                    # data. List actions have no resource-level permissions.
                    sid="FindLiveModelPackageInGroup",
                    actions=["sagemaker:ListModelPackages"],
                    resources=["*"],
                ),
            ],
        )
        sagemaker_arn = "arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>"
        reasons = {
            "*": (
                "sagemaker:ListModelPackages supports no resource-level scoping; it only lists "
                "package summaries, and the jobs read details through the scoped DescribeModelPackage."
            ),
            f"{sagemaker_arn}:endpoint-config/{names.endpoint_config_prefix}-*": (
                "The deploy Lambda names endpoint configs per model version at deploy time; the "
                "wildcard is limited to this environment's endpoint config prefix."
            ),
            f"{sagemaker_arn}:model/{names.model_prefix}-*": (
                "The deploy Lambda names models per package version at deploy time; the wildcard "
                "is limited to this environment's model prefix."
            ),
            f"{sagemaker_arn}:model-package/{names.model_package_group}/*": (
                "Package versions are numbered by SageMaker on registration; the wildcard is "
                "limited to versions in this environment's model package group."
            ),
        }
        for resource, reason in reasons.items():
            acknowledge(policy, f"AwsSolutions-IAM5[Resource::{resource}]", reason)
        return policy
