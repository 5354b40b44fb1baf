"""Drift-triggered retraining: alarm state changes -> EventBridge -> the retrain guard Lambda, which
starts the training pipeline unless one runs or one started within the configured interval."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from contract import environment_variables as variables
from contract.events import ALARM_STATE_CHANGE, CLOUDWATCH_SOURCE
from contract.naming import Names
from stacks.constructs.monitoring_schedule import pipeline_arn
from stacks.functions.function_code import FunctionCode
from stacks.functions.project_function import ProjectFunction

# The code folder beside this module (README.md there says what the function does).
CODE = FunctionCode("retrain_guard", contract_modules=("environment_variables.py", "events.py"))
HANDLER = "retrain_guard.handler"


def retrain_event_pattern(alarm_names: Sequence[str]) -> dict:
    """A change of one of ``alarm_names`` into ALARM (not back to OK, not INSUFFICIENT_DATA)."""
    return {
        "source": [CLOUDWATCH_SOURCE],
        "detail-type": [ALARM_STATE_CHANGE],
        "detail": {"alarmName": sorted(alarm_names), "state": {"value": ["ALARM"]}},
    }


def guard_environment(names: Names, min_interval_hours: int, alarm_names: Sequence[str]) -> dict[str, str]:
    """Keys are ``contract.environment_variables.RETRAIN_GUARD``, which ``code/retrain_guard`` reads."""
    return {
        variables.RETRAIN_PIPELINE_NAME: names.training_pipeline,
        variables.RETRAIN_MIN_INTERVAL_HOURS: str(min_interval_hours),
        variables.RETRAIN_TRIGGER_ALARMS: ",".join(sorted(alarm_names)),
    }


class RetrainGuardFunction(ProjectFunction):
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
        function_name = names.retrain_guard_function
        super().__init__(
            scope,
            construct_id,
            function_name=function_name,
            description=f"Starts {names.training_pipeline} on drift/quality alarms, throttled",
            role_description=(
                f"Retrain guard of {names.base}: list and start {names.training_pipeline} only"
            ),
            code=CODE,
            handler=HANDLER,
            environment=guard_environment(names, min_interval_hours, alarm_names),
            statements=[
                iam.PolicyStatement(
                    sid="StartTrainingPipelineWhenIdle",
                    actions=["sagemaker:ListPipelineExecutions", "sagemaker:StartPipelineExecution"],
                    resources=[pipeline_arn(names.training_pipeline)],
                )
            ],
            key=key,
            dead_letter_queue_name=names.retrain_guard_dead_letter_queue,
            dead_letter_owner="the retrain guard Lambda and its EventBridge target",
            log_retention_days=log_retention_days,
            destroy_on_delete=destroy_on_delete,
            timeout=Duration.seconds(30),
            memory_size=128,
            # One decision at a time (ProjectFunction's reserved concurrency of 1): two alarms at once
            # must not both see "idle" and both start.
            max_event_age=Duration.hours(1),
        )
        self.rule = events.Rule(
            self,
            "AlarmRule",
            rule_name=names.retrain_on_alarm_rule,
            description=f"Drift/quality alarms -> retrain guard -> {names.training_pipeline}",
            event_pattern=events.EventPattern(
                source=[CLOUDWATCH_SOURCE],
                detail_type=[ALARM_STATE_CHANGE],
                detail=retrain_event_pattern(alarm_names)["detail"],
            ),
            targets=[self.event_target(retry_attempts=4, max_event_age=Duration.hours(1))],
        )
