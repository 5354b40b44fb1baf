"""StorageStack: the environment's key, buckets, alerts topic and SageMaker execution role.

Every other stack (training, deployment, monitoring) reads from and writes to this bucket with this
key, and runs SageMaker work as this role, so these live in the stack that changes least.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Aws, CfnOutput, Stack
from constructs import Construct

from stacks.constructs.alerts_topic import AlertsTopic
from stacks.constructs.endpoint_role import EndpointRole
from stacks.constructs.execution_role import SageMakerExecutionRole
from stacks.constructs.secure_storage import SecureStorage
from stacks.nag import acknowledge
from stacks.naming import Names
from stacks.settings import EnvironmentSettings


class StorageStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: Names,
        settings: EnvironmentSettings,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.storage = SecureStorage(
            self,
            "Storage",
            names=names,
            account=Aws.ACCOUNT_ID,
            region=Aws.REGION,
            destroy_on_delete=settings.removal_policy == "destroy",
            data_retention_days=settings.data_retention_days,
            noncurrent_version_retention_days=settings.noncurrent_version_retention_days,
        )
        self.execution = SageMakerExecutionRole(
            self,
            "SageMakerExecution",
            names=names,
            bucket=self.storage.bucket,
            key=self.storage.key,
        )
        # Served models get their own, narrower role (see endpoint_role.py).
        self.endpoint = EndpointRole(
            self, "EndpointModel", names=names, bucket=self.storage.bucket, key=self.storage.key
        )
        self.endpoint_role = self.endpoint.role
        self.alerts = AlertsTopic(
            self,
            "Alerts",
            names=names,
            key=self.storage.key,
            emails=settings.monitoring.alarm_emails,
        )
        # Rules and alarms of every stack publish through this reference (see alerts_topic.py).
        self.alerts_topic = self.alerts.publishers
        self.bucket = self.storage.bucket
        self.key = self.storage.key
        self.execution_role = self.execution.role

        CfnOutput(self, "DataBucketName", value=self.bucket.bucket_name)
        CfnOutput(self, "KeyArn", value=self.key.key_arn)
        CfnOutput(self, "ExecutionRoleArn", value=self.execution_role.role_arn)
        CfnOutput(self, "EndpointRoleArn", value=self.endpoint_role.role_arn)
        CfnOutput(self, "AlertsTopicArn", value=self.alerts_topic.topic_arn)

        acknowledge(
            self.storage.access_log_bucket,
            "AwsSolutions-S1",
            "This bucket is the server-access-log destination; logging it into itself would loop.",
        )
