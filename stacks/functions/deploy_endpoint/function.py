"""The deploy Lambda: its code asset, role, log group, dead-letter queue and the events that invoke it.

Approval decisions reach it through an EventBridge rule on the environment's model package group;
the endpoint's InService events reach it too, so it can finish a rollout (autoscaling, cleanup, approvals
that arrived while the endpoint was busy). It runs one at a time (reserved concurrency 1) so two
deployments never race on the endpoint.
"""

from __future__ import annotations

from aws_cdk import Aws, Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from contract import environment_variables as variables
from contract.events import ENDPOINT_STATE_CHANGE, MODEL_PACKAGE_STATE_CHANGE, SAGEMAKER_SOURCE
from contract.naming import CAPTURE_PREFIX, PRODUCTION_VARIANT, Names
from contract.settings import EndpointSettings
from stacks.functions.function_code import FunctionCode
from stacks.functions.project_function import ProjectFunction
from stacks.nag import acknowledge

# The code folder beside this module (README.md there says what the function does).
CODE = FunctionCode(
    "deploy_endpoint",
    contract_modules=("deployment_metrics.py", "environment_variables.py", "events.py"),
)
HANDLER = "deploy_handler.handler"
APPLICATION_AUTOSCALING_PRINCIPAL = "sagemaker.application-autoscaling.amazonaws.com"
# What the Lambda scales (code/endpoint_autoscaling.py uses the same values).
AUTOSCALING_SERVICE_NAMESPACE = "sagemaker"
AUTOSCALING_SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
SAGEMAKER_PRINCIPAL = "sagemaker.amazonaws.com"


def approval_event_pattern(names: Names) -> dict:
    """Approve or reject of a version in this environment's group; the pipeline registers into it."""
    return {
        "source": [SAGEMAKER_SOURCE],
        "detail-type": [MODEL_PACKAGE_STATE_CHANGE],
        "detail": {
            "ModelPackageGroupName": [names.model_package_group],
            "ModelApprovalStatus": ["Approved", "Rejected"],
        },
    }


def endpoint_in_service_pattern(names: Names) -> dict:
    return {
        "source": [SAGEMAKER_SOURCE],
        "detail-type": [ENDPOINT_STATE_CHANGE],
        "detail": {"EndpointName": [names.endpoint], "EndpointStatus": ["IN_SERVICE"]},
    }


def deploy_environment(
    names: Names, endpoint: EndpointSettings, *, bucket_name: str, key_arn: str, role_arn: str
) -> dict[str, str]:
    """The Lambda's environment: every name and setting it needs (it cannot import ``stacks``).

    Keys are ``contract.environment_variables.DEPLOY_FUNCTION``, which ``code/deploy_config`` reads; a test
    checks both agree.
    """
    return {
        variables.DEPLOY_ENDPOINT_NAME: names.endpoint,
        variables.DEPLOY_MODEL_PACKAGE_GROUP: names.model_package_group,
        variables.DEPLOY_MODEL_PREFIX: names.model_prefix,
        variables.DEPLOY_ENDPOINT_CONFIG_PREFIX: names.endpoint_config_prefix,
        variables.DEPLOY_VARIANT_NAME: PRODUCTION_VARIANT,
        variables.DEPLOY_EXECUTION_ROLE_ARN: role_arn,
        variables.DEPLOY_KMS_KEY_ARN: key_arn,
        variables.DEPLOY_CAPTURE_S3_URI: f"s3://{bucket_name}/{CAPTURE_PREFIX}",
        variables.DEPLOY_ENDPOINT_KIND: endpoint.kind,
        variables.DEPLOY_INSTANCE_TYPE: endpoint.instance_type,
        variables.DEPLOY_INITIAL_INSTANCE_COUNT: str(endpoint.initial_instance_count),
        variables.DEPLOY_MIN_INSTANCES: str(endpoint.min_instances),
        variables.DEPLOY_MAX_INSTANCES: str(endpoint.max_instances),
        variables.DEPLOY_TARGET_INVOCATIONS_PER_INSTANCE: str(endpoint.target_invocations_per_instance),
        variables.DEPLOY_SERVERLESS_MEMORY_MB: str(endpoint.serverless_memory_mb),
        variables.DEPLOY_SERVERLESS_MAX_CONCURRENCY: str(endpoint.serverless_max_concurrency),
        variables.DEPLOY_DATA_CAPTURE_PERCENT: str(endpoint.data_capture_percent),
        variables.DEPLOY_CANARY_PERCENT: str(endpoint.canary_percent),
        variables.DEPLOY_CANARY_WAIT_SECONDS: str(endpoint.canary_wait_minutes * 60),
        variables.DEPLOY_TERMINATION_WAIT_SECONDS: str(endpoint.termination_wait_minutes * 60),
        variables.DEPLOY_KEEP_VERSIONS: str(endpoint.keep_versions),
        variables.DEPLOY_NETWORK_ISOLATION: "true" if endpoint.network_isolation else "false",
        variables.DEPLOY_ROLLBACK_ALARMS: ",".join(names.rollback_alarms),
        variables.DEPLOY_SCALING_POLICY_NAME: names.endpoint_scaling_policy,
        variables.DEPLOY_METRIC_NAMESPACE: names.deployment_metric_namespace,
    }


def _pattern(pattern: dict) -> events.EventPattern:
    return events.EventPattern(
        source=pattern["source"], detail_type=pattern["detail-type"], detail=pattern["detail"]
    )


class DeployFunction(ProjectFunction):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: Names,
        endpoint: EndpointSettings,
        bucket_name: str,
        key: kms.IKey,
        execution_role: iam.IRole,
        log_retention_days: int,
        destroy_on_delete: bool,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            function_name=names.deploy_function,
            description=f"Deploys approved {names.model_package_group} versions to {names.endpoint}",
            role_description=(
                f"Deploy Lambda of {names.base}: only this environment's endpoint, configs, models"
            ),
            code=CODE,
            handler=HANDLER,
            environment=deploy_environment(
                names, endpoint, bucket_name=bucket_name, key_arn=key.key_arn,
                role_arn=execution_role.role_arn,
            ),
            statements=self._permissions(names, key, execution_role),
            key=key,
            dead_letter_queue_name=names.deploy_dead_letter_queue,
            dead_letter_owner="the deploy Lambda and its EventBridge rules",
            log_retention_days=log_retention_days,
            destroy_on_delete=destroy_on_delete,
            timeout=Duration.minutes(1),
            memory_size=256,
            # Lambda retries twice (1 and 2 minutes later); throttled events (the concurrency of 1)
            # wait up to max_event_age.
            max_event_age=Duration.hours(6),
        )
        self._acknowledge_wildcards(names)

        target = self.event_target(retry_attempts=8, max_event_age=Duration.hours(2))
        self.approval_rule = events.Rule(
            self,
            "ApprovalRule",
            rule_name=names.model_approval_rule,
            description=f"Approve/reject of {names.model_package_group} versions -> deploy Lambda",
            event_pattern=_pattern(approval_event_pattern(names)),
            targets=[target],
        )
        self.in_service_rule = events.Rule(
            self,
            "EndpointInServiceRule",
            rule_name=names.endpoint_in_service_rule,
            description=f"{names.endpoint} became InService -> deploy Lambda finishes the rollout",
            event_pattern=_pattern(endpoint_in_service_pattern(names)),
            targets=[target],
        )

    @staticmethod
    def _permissions(names: Names, key: kms.IKey, execution_role: iam.IRole) -> list[iam.PolicyStatement]:
        """Only this environment's endpoint, its configs and models, and its scaling and metrics."""
        arn = f"arn:{Aws.PARTITION}:sagemaker:{Aws.REGION}:{Aws.ACCOUNT_ID}"
        endpoint_arn = f"{arn}:endpoint/{names.endpoint}"
        config_arns = f"{arn}:endpoint-config/{names.endpoint_config_prefix}-*"
        model_arns = f"{arn}:model/{names.model_prefix}-*"
        statements = [
            iam.PolicyStatement(
                sid="ReadApprovedPackages",
                actions=["sagemaker:DescribeModelPackage"],
                resources=[f"{arn}:model-package/{names.model_package_group}/*"],
            ),
            iam.PolicyStatement(
                sid="ListOwnResources",
                # List actions have no resource-level permissions; results are filtered by name.
                actions=[
                    "sagemaker:ListModelPackages",
                    "sagemaker:ListEndpointConfigs",
                    "sagemaker:ListModels",
                ],
                resources=["*"],
            ),
            iam.PolicyStatement(
                sid="ManageOwnModels",
                actions=["sagemaker:CreateModel", "sagemaker:DescribeModel", "sagemaker:DeleteModel"],
                resources=[model_arns],
            ),
            iam.PolicyStatement(
                sid="ManageOwnEndpointConfigs",
                actions=[
                    "sagemaker:CreateEndpointConfig",
                    "sagemaker:DescribeEndpointConfig",
                    "sagemaker:DeleteEndpointConfig",
                ],
                resources=[config_arns],
            ),
            iam.PolicyStatement(
                sid="DeployOwnEndpoint",
                actions=[
                    "sagemaker:CreateEndpoint",
                    "sagemaker:UpdateEndpoint",
                    "sagemaker:DescribeEndpoint",
                    # Application Auto Scaling checks the caller may change the variant's capacity
                    # before RegisterScalableTarget succeeds.
                    "sagemaker:UpdateEndpointWeightsAndCapacities",
                ],
                resources=[endpoint_arn, config_arns],
            ),
            iam.PolicyStatement(
                sid="PassOnlyTheExecutionRole",
                actions=["iam:PassRole"],
                resources=[execution_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": SAGEMAKER_PRINCIPAL}},
            ),
            iam.PolicyStatement(
                # CreateEndpointConfig with KmsKeyId needs grants for the volumes and capture.
                sid="EncryptVolumesAndCapture",
                actions=["kms:CreateGrant", "kms:DescribeKey", "kms:Decrypt", "kms:GenerateDataKey"],
                resources=[key.key_arn],
            ),
            iam.PolicyStatement(
                sid="ReadScaling",
                # Describe actions take neither a resource nor the autoscaling condition keys.
                actions=[
                    "application-autoscaling:DescribeScalableTargets",
                    "application-autoscaling:DescribeScalingPolicies",
                    "cloudwatch:DescribeAlarms",
                ],
                resources=["*"],
            ),
            iam.PolicyStatement(
                sid="ScaleOwnEndpoint",
                # A scalable target's ARN is generated when it is registered, so the writes are
                # scoped by what they scale instead: SageMaker variants' instance counts only.
                actions=[
                    "application-autoscaling:RegisterScalableTarget",
                    "application-autoscaling:DeregisterScalableTarget",
                    "application-autoscaling:PutScalingPolicy",
                ],
                resources=["*"],
                conditions={
                    "StringEquals": {
                        "application-autoscaling:service-namespace": AUTOSCALING_SERVICE_NAMESPACE,
                        "application-autoscaling:scalable-dimension": AUTOSCALING_SCALABLE_DIMENSION,
                    }
                },
            ),
            iam.PolicyStatement(
                sid="PublishLiveModelVersion",
                # PutMetricData has no resources; the namespace condition keeps the function to its
                # own metrics (not the monitors' ones, which drift alarms and retraining act on).
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": names.deployment_metric_namespace}},
            ),
            iam.PolicyStatement(
                sid="TargetTrackingAlarms",
                actions=["cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms"],
                resources=[
                    f"arn:{Aws.PARTITION}:cloudwatch:{Aws.REGION}:{Aws.ACCOUNT_ID}:alarm:"
                    f"TargetTracking-endpoint/{names.endpoint}/*"
                ],
            ),
            iam.PolicyStatement(
                sid="AutoscalingServiceLinkedRole",
                actions=["iam:CreateServiceLinkedRole"],
                resources=[
                    f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:role/aws-service-role/"
                    f"{APPLICATION_AUTOSCALING_PRINCIPAL}/AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
                ],
                conditions={"StringLike": {"iam:AWSServiceName": APPLICATION_AUTOSCALING_PRINCIPAL}},
            ),
        ]
        return statements

    def _acknowledge_wildcards(self, names: Names) -> None:
        sagemaker_arn = "arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>"
        reasons = {
            "*": (
                "sagemaker:List*, Application Auto Scaling, cloudwatch:DescribeAlarms and "
                "cloudwatch:PutMetricData support no resource-level scoping; listings are filtered to the "
                "function's own name prefixes, scaling writes are limited to SageMaker variant instance "
                "counts and metrics to the deployment namespace by condition keys."
            ),
            f"{sagemaker_arn}:model-package/{names.model_package_group}/*": (
                "Package versions are numbered at registration; limited to this environment's group."
            ),
            f"{sagemaker_arn}:model/{names.model_prefix}-*": (
                "Model names carry the package version and a digest chosen at deploy time; limited to "
                "this environment's model prefix."
            ),
            f"{sagemaker_arn}:endpoint-config/{names.endpoint_config_prefix}-*": (
                "Endpoint config names carry the package version and a digest chosen at deploy time; "
                "limited to this environment's config prefix."
            ),
            "arn:<AWS::Partition>:cloudwatch:<AWS::Region>:<AWS::AccountId>:alarm:"
            f"TargetTracking-endpoint/{names.endpoint}/*": (
                "Target tracking names its alarms after the scaled resource with a generated suffix; "
                "limited to this endpoint's alarms."
            ),
        }
        for resource, reason in reasons.items():
            acknowledge(self.policy, f"AwsSolutions-IAM5[Resource::{resource}]", reason)
