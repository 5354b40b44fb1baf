"""TrainingStack: the SageMaker training pipeline and alerts for failed pipeline executions. The
model package group it registers into is the storage stack's."""

from __future__ import annotations

from typing import Any

from aws_cdk import Aws, CfnOutput, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct

from contract.events import PIPELINE_EXECUTION_STATUS_CHANGE, SAGEMAKER_SOURCE
from contract.naming import Names
from contract.settings import TrainingSettings
from stacks.constructs.training_pipeline import TrainingPipeline


class TrainingStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: Names,
        settings: TrainingSettings,
        bucket: s3.IBucket,
        key: kms.IKey,
        execution_role: iam.IRole,
        alerts_topic: sns.ITopic,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.training = TrainingPipeline(
            self,
            "TrainingPipeline",
            names=names,
            settings=settings,
            bucket=bucket,
            key=key,
            execution_role=execution_role,
        )
        # SageMaker pipeline ARNs carry the name in lower case.
        self.pipeline_arn = (
            f"arn:{Aws.PARTITION}:sagemaker:{Aws.REGION}:{Aws.ACCOUNT_ID}:"
            f"pipeline/{names.training_pipeline.lower()}"
        )

        events.Rule(
            self,
            "PipelineFailed",
            rule_name=names.training_failed_rule,
            description="Failed training pipeline executions notify the alerts topic",
            event_pattern=events.EventPattern(
                source=[SAGEMAKER_SOURCE],
                detail_type=[PIPELINE_EXECUTION_STATUS_CHANGE],
                detail={
                    "currentPipelineExecutionStatus": ["Failed"],
                    "pipelineArn": [self.pipeline_arn],
                },
            ),
            targets=[targets.SnsTopic(alerts_topic)],
        )
        CfnOutput(self, "PipelineName", value=names.training_pipeline)
