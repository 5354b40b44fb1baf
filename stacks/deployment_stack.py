"""DeploymentStack: approval-driven deployment of the model registry's versions to the endpoint.

The endpoint itself is not a CloudFormation resource: the deploy Lambda creates and updates it when a
model package is approved or rejected, because which model serves is a registry decision, not a stack
change. This stack holds what makes that safe: the Lambda and its events, the rollback alarms, the
alarms on the Lambda itself, the alert rules, and the deployment dashboard that shows a rollout.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from contract.naming import Names
from contract.settings import EnvironmentSettings
from stacks.constructs.deploy_alarms import DeployAlarms
from stacks.constructs.deployment_dashboard import DeploymentDashboard
from stacks.constructs.endpoint_alarms import EndpointAlarms
from stacks.functions.deploy_endpoint.function import DeployFunction
from stacks.storage_stack import StorageStack


class DeploymentStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: Names,
        settings: EnvironmentSettings,
        storage: StorageStack,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.alarms = EndpointAlarms(self, "EndpointAlarms", names=names, alerts_topic=storage.alerts_topic)
        self.deploy = DeployFunction(
            self,
            "DeployEndpoint",
            names=names,
            endpoint=settings.endpoint,
            bucket_name=storage.bucket.bucket_name,
            key=storage.key,
            # Models are served as the endpoint role, not the pipeline's execution role.
            execution_role=storage.endpoint_role,
            log_retention_days=settings.log_retention_days,
            destroy_on_delete=settings.removal_policy == "destroy",
        )
        self.deploy_alarms = DeployAlarms(
            self,
            "DeployAlarms",
            names=names,
            function=self.deploy.function,
            log_group=self.deploy.log_group,
            dead_letter_queue=self.deploy.dead_letter_queue,
            alerts_topic=storage.alerts_topic,
        )
        self.dashboard = DeploymentDashboard(
            self,
            "Dashboard",
            names=names,
            endpoint=settings.endpoint,
            deploy=self.deploy,
            deploy_alarms=self.deploy_alarms,
            endpoint_alarms=self.alarms,
        )
        CfnOutput(self, "DeployFunctionName", value=self.deploy.function.function_name)
        CfnOutput(self, "DeployDeadLetterQueueUrl", value=self.deploy.dead_letter_queue.queue_url)
        CfnOutput(self, "EndpointName", value=names.endpoint)
        CfnOutput(self, "DeploymentDashboardName", value=names.deployment_dashboard)

