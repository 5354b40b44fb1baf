"""StorageStack: the environment's key, buckets, alerts topic, SageMaker execution role, model
package group, and what promotion between environments needs.

Every other stack (training, deployment, monitoring) reads from and writes to this bucket with this
key, and runs SageMaker work as this role, so these live in the stack that changes least. The
model package group is here too: an environment that only receives promoted models has no
training stack, and its registry (with the grants promotion needs) must exist all the same.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Aws, CfnOutput, Stack
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from contract.naming import Names
from contract.settings import EnvironmentSettings, PromotionPeers, cross_account
from stacks.constructs.alerts_topic import AlertsTopic
from stacks.constructs.endpoint_role import EndpointRole
from stacks.constructs.execution_role import SageMakerExecutionRole
from stacks.constructs.promotion_access import PromotionRole, SourceGrants
from stacks.constructs.secure_storage import SecureStorage
from stacks.nag import acknowledge


class StorageStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: Names,
        settings: EnvironmentSettings,
        peers: PromotionPeers | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        peers = peers or PromotionPeers(None, ())
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

        self.model_package_group = sagemaker.CfnModelPackageGroup(
            self,
            "ModelPackageGroup",
            model_package_group_name=names.model_package_group,
            model_package_group_description=(
                f"Dog-breed classifiers trained by {names.training_pipeline}"
                if settings.training.enabled
                else f"Dog-breed classifiers promoted into {names.env}"
            ),
        )
        self.promotion_role = None
        if peers.source is not None:
            source_env, source_settings = peers.source
            self.promotion_role = PromotionRole(
                self,
                "Promotion",
                names=names,
                settings=settings,
                source=Names(names.project, source_env),
                source_settings=source_settings,
                bucket=self.bucket,
                key=self.key,
            ).role
            CfnOutput(self, "PromotionRoleArn", value=self.promotion_role.role_arn)
        for target_env, target_settings in peers.targets:
            if cross_account(target_settings, settings):
                SourceGrants(
                    self,
                    f"PromotionTo{target_env.capitalize()}",
                    names=names,
                    settings=settings,
                    target=Names(names.project, target_env),
                    target_settings=target_settings,
                    bucket=self.storage.bucket,
                    key=self.storage.key,
                )

        CfnOutput(self, "ModelPackageGroupName", value=names.model_package_group)
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
