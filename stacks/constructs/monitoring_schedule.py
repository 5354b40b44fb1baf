"""EventBridge Scheduler starts the monitoring pipeline on the environment's schedule.

SageMaker Model Monitor is closed to new customers, so the schedule is ours: a Scheduler schedule
with the pipeline as a templated target (sagemaker:StartPipelineExecution with pipeline parameters),
its own role that may start exactly this pipeline, and the project key for the schedule's payload.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from aws_cdk import Aws
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_scheduler as scheduler
from constructs import Construct

from contract.naming import Names
from contract.settings import schedule_seconds

SCHEDULER_PRINCIPAL = "scheduler.amazonaws.com"
# A missed run is not worth more than one retry window: the next scheduled run covers the data.
MAX_EVENT_AGE_SECONDS = 3600
RETRY_ATTEMPTS = 3
# Alarm periods must be a multiple of 60 s and at most a day.
MIN_PERIOD_SECONDS = 300
MAX_PERIOD_SECONDS = 86400


def schedule_period_seconds(expression: str) -> int:
    """The time between two monitoring runs, as an alarm period (at least 5 minutes).

    Alarms on the monitors' metrics evaluate one run per period, so a period shorter than the
    schedule would see empty periods between runs. A schedule over a day is refused: the alarms'
    periods and the monitors' windows stop at a day, so the rest of the interval would go unseen."""
    try:
        seconds = schedule_seconds(expression)
    except ValueError as error:  # settings validation refuses these before synth gets here
        raise ValueError(f"schedule {expression!r} {error}") from None
    if seconds > MAX_PERIOD_SECONDS:
        raise ValueError(f"schedule {expression!r} is longer than a day; allowed: at most rate(1 day)")
    rounded = -(-seconds // 60) * 60
    return max(rounded, MIN_PERIOD_SECONDS)


def declared_parameters(definition: str) -> dict[str, dict]:
    """Pipeline parameters the rendered definition declares, by name."""
    return {p["Name"]: p for p in json.loads(definition).get("Parameters", [])}


def check_parameters(definition: str, parameters: Mapping[str, str]) -> None:
    """StartPipelineExecution rejects parameters the pipeline does not declare, but only at run time,
    hours after deployment: fail synth instead, naming the parameter and the declared ones."""
    declared = declared_parameters(definition)
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise ValueError(
            f"schedule parameters {unknown} are not declared by the pipeline definition; "
            f"declared: {sorted(declared)}"
        )


def pipeline_arn(pipeline_name: str) -> str:
    # SageMaker pipeline ARNs carry the name in lower case.
    return f"arn:{Aws.PARTITION}:sagemaker:{Aws.REGION}:{Aws.ACCOUNT_ID}:pipeline/{pipeline_name.lower()}"


class MonitoringSchedule(Construct):
    """A Scheduler schedule that starts ``pipeline_name`` with ``parameters``, as its own role."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: Names,
        expression: str,
        pipeline_name: str,
        definition: str,
        parameters: Mapping[str, str],
        key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        check_parameters(definition, parameters)
        schedule_period_seconds(expression)  # fails synth on an expression alarms cannot follow
        self.pipeline_arn = pipeline_arn(pipeline_name)
        self.role = iam.Role(
            self,
            "Role",
            role_name=names.monitoring_scheduler_role,
            description=f"EventBridge Scheduler starts {pipeline_name} and nothing else",
            assumed_by=iam.ServicePrincipal(
                SCHEDULER_PRINCIPAL,
                # Only schedules of this account may assume it (confused-deputy guard).
                conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            ),
        )
        self.policy = iam.Policy(
            self,
            "Policy",
            policy_name=names.monitoring_scheduler_role,
            roles=[self.role],
            statements=[
                iam.PolicyStatement(
                    sid="StartMonitoringPipeline",
                    actions=["sagemaker:StartPipelineExecution"],
                    resources=[self.pipeline_arn],
                ),
                iam.PolicyStatement(
                    # The schedule's target payload is encrypted with the project key.
                    sid="DecryptSchedulePayload",
                    actions=["kms:Decrypt"],
                    resources=[key.key_arn],
                ),
            ],
        )
        self.schedule = scheduler.CfnSchedule(
            self,
            "Schedule",
            name=names.monitoring_schedule,
            description=f"Runs {pipeline_name} for {names.endpoint}",
            schedule_expression=expression,
            schedule_expression_timezone="UTC",
            flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
            state="ENABLED",
            kms_key_arn=key.key_arn,
            target=scheduler.CfnSchedule.TargetProperty(
                arn=self.pipeline_arn,
                role_arn=self.role.role_arn,
                retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(
                    maximum_event_age_in_seconds=MAX_EVENT_AGE_SECONDS,
                    maximum_retry_attempts=RETRY_ATTEMPTS,
                ),
                sage_maker_pipeline_parameters=scheduler.CfnSchedule.SageMakerPipelineParametersProperty(
                    pipeline_parameter_list=[
                        scheduler.CfnSchedule.SageMakerPipelineParameterProperty(name=name, value=value)
                        for name, value in sorted(parameters.items())
                    ]
                )
                if parameters
                else None,
            ),
        )
        # The schedule must not fire before its role may start the pipeline.
        self.schedule.node.add_dependency(self.policy)
