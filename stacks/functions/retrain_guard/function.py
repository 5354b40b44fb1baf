"""Drift-triggered retraining: alarm state changes -> EventBridge -> the retrain guard Lambda, which
starts the training pipeline unless one runs or one started within the configured interval."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_logs as logs
from constructs import Construct

from contract.naming import Names
from stacks.constructs.monitoring_schedule import pipeline_arn
from stacks.functions.project_function import (
    RUNTIME,
    acknowledge_dead_letter_grant,
    dead_letter_queue,
    lambda_code,
)

LAMBDA_FOLDER = "retrain_guard"
HANDLER = "retrain_guard.handler"
# The newest Python runtime cdk-nag's AwsSolutions-L1 accepts; boto3 ships with it, so no bundling.
ALARM_STATE_CHANGE = "CloudWatch Alarm State Change"


def retrain_event_pattern(alarm_names: Sequence[str]) -> dict:
    """A change of one of ``alarm_names`` into ALARM (not back to OK, not INSUFFICIENT_DATA)."""
    return {
        "source": ["aws.cloudwatch"],
        "detail-type": [ALARM_STATE_CHANGE],
        "detail": {"alarmName": sorted(alarm_names), "state": {"value": ["ALARM"]}},
    }


def guard_environment(names: Names, min_interval_hours: int, alarm_names: Sequence[str]) -> dict[str, str]:
    """Keys are ``code/retrain_guard.ENVIRONMENT_VARIABLES``; a test checks both agree."""
    return {
        "RETRAIN_PIPELINE_NAME": names.training_pipeline,
        "RETRAIN_MIN_INTERVAL_HOURS": str(min_interval_hours),
        "RETRAIN_TRIGGER_ALARMS": ",".join(sorted(alarm_names)),
    }


class RetrainGuardFunction(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: Names,
        alarm_names: Sequence[str],
        min_interval_hours: int,
        key: kms.IKey,
        log_retention_days: int,
        destroy_on_delete: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        function_name = f"{names.base}-retrain-guard"
        removal = RemovalPolicy.DESTROY if destroy_on_delete else RemovalPolicy.RETAIN

        # Events that failed every retry land here, for a look and a redrive.
        self.dead_letter_queue = dead_letter_queue(
            self,
            queue_name=f"{function_name}-dlq",
            key=key,
            owner="the retrain guard Lambda and its EventBridge target",
        )
        self.log_group = logs.LogGroup(
            self, "Logs", log_group_name=f"/aws/lambda/{function_name}", removal_policy=removal
        )
        # RetentionDays is a name enum in Python; settings already restrict the value to legal days.
        self.log_group.node.default_child.retention_in_days = log_retention_days

        self.role = iam.Role(
            self,
            "Role",
            role_name=function_name,
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Retrain guard of {names.base}: list and start {names.training_pipeline} only",
        )
        self.log_group.grant_write(self.role)
        training_arn = pipeline_arn(names.training_pipeline)
        self.policy = iam.Policy(
            self,
            "Policy",
            policy_name=function_name,
            roles=[self.role],
            statements=[
                iam.PolicyStatement(
                    sid="StartTrainingPipelineWhenIdle",
                    actions=["sagemaker:ListPipelineExecutions", "sagemaker:StartPipelineExecution"],
                    resources=[training_arn],
                )
            ],
        )

        self.function = lambda_.Function(
            self,
            "Function",
            function_name=function_name,
            description=f"Starts {names.training_pipeline} on drift/quality alarms, throttled",
            runtime=RUNTIME,
            handler=HANDLER,
            code=lambda_code(LAMBDA_FOLDER),
            role=self.role,
            log_group=self.log_group,
            timeout=Duration.seconds(30),
            memory_size=128,
            # One decision at a time: two alarms at once must not both see "idle" and both start.
            reserved_concurrent_executions=1,
            environment=guard_environment(names, min_interval_hours, alarm_names),
            retry_attempts=2,
            max_event_age=Duration.hours(1),
            on_failure=destinations.SqsDestination(self.dead_letter_queue),
        )
        self.function.node.add_dependency(self.policy)
        acknowledge_dead_letter_grant(self.role)
        self.rule = events.Rule(
            self,
            "AlarmRule",
            rule_name=f"{names.base}-retrain-on-alarm",
            description=f"Drift/quality alarms -> retrain guard -> {names.training_pipeline}",
            event_pattern=events.EventPattern(
                source=["aws.cloudwatch"],
                detail_type=[ALARM_STATE_CHANGE],
                detail=retrain_event_pattern(alarm_names)["detail"],
            ),
            targets=[
                targets.LambdaFunction(
                    self.function,
                    retry_attempts=4,
                    max_event_age=Duration.hours(1),
                    # EventBridge may use the key: the storage stack's key policy lets
                    # events.amazonaws.com encrypt (for the alerts topic).
                    dead_letter_queue=self.dead_letter_queue,
                )
            ],
        )
