"""The SageMaker execution role that pipeline jobs, the pipeline itself and the endpoint run as."""

from __future__ import annotations

from aws_cdk import Aws, Fn, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from contract.naming import (
    BUCKET_PREFIXES,
    CAPTURE_PREFIX,
    DATASETS_PREFIX,
    GROUND_TRUTH_PREFIX,
    MONITORING_PREFIX,
    PIPELINE_RUNS_PREFIX,
    PRETRAINED_WEIGHTS_PREFIX,
    PROMOTED_PREFIX,
    Names,
)
from stacks.dlc_registries import DLC_REPOSITORIES, pytorch_registry_account
from stacks.nag import acknowledge

SAGEMAKER_PRINCIPAL = "sagemaker.amazonaws.com"

# Jobs started by SageMaker Pipelines are named pipelines-<execution>-<step>-<hash>.
PIPELINE_JOB_PREFIX = "pipelines-"

# Jobs write only step outputs (pipeline-runs/) and monitoring reports (monitoring/); everything
# else they read. Capture is written by the endpoint role, datasets and weights by operators.
WRITABLE_PREFIXES = (PIPELINE_RUNS_PREFIX, MONITORING_PREFIX)
# Promoted versions' copies are written by the promotion role only; jobs read their baselines.
READ_ONLY_PREFIXES = (
    DATASETS_PREFIX,
    PRETRAINED_WEIGHTS_PREFIX,
    CAPTURE_PREFIX,
    GROUND_TRUTH_PREFIX,
    PROMOTED_PREFIX,
)


class SageMakerExecutionRole(Construct):
    """Trusted by SageMaker only, and scoped to this environment's bucket prefixes, key, model
    package group, jobs, logs and AWS's PyTorch container images. No managed policies."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: Names,
        bucket: s3.IBucket,
        key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        self.role = iam.Role(
            self,
            "Role",
            role_name=names.execution_role,
            assumed_by=iam.ServicePrincipal(SAGEMAKER_PRINCIPAL),
            description=f"SageMaker jobs, pipelines and endpoints of {names.base}",
        )
        policy = iam.Policy(self, "Policy", policy_name=names.execution_policy)
        self.policy = policy

        # Data: list only the project's prefixes, read objects under them, write only outputs.
        policy.add_statements(
            iam.PolicyStatement(
                # No s3:prefix condition: the key is absent from GetBucketLocation requests.
                sid="LocateBucket",
                actions=["s3:GetBucketLocation"],
                resources=[bucket.bucket_arn],
            ),
            iam.PolicyStatement(
                sid="ListProjectPrefixes",
                actions=["s3:ListBucket"],
                resources=[bucket.bucket_arn],
                conditions={
                    "StringLike": {
                        "s3:prefix": ["", *[f"{prefix}/*" for prefix in BUCKET_PREFIXES]]
                    }
                },
            ),
            iam.PolicyStatement(
                # Inputs: datasets, staged weights, the endpoint's capture, ground truth.
                sid="ReadInputPrefixes",
                actions=["s3:GetObject"],
                resources=[bucket.arn_for_objects(f"{prefix}/*") for prefix in READ_ONLY_PREFIXES],
            ),
            iam.PolicyStatement(
                # Outputs: pipeline step outputs and models, monitoring reports (read back too).
                sid="ReadWriteOutputPrefixes",
                actions=[
                    "s3:GetObject",
                    "s3:PutObject",
                    "s3:DeleteObject",
                    "s3:AbortMultipartUpload",
                ],
                resources=[bucket.arn_for_objects(f"{prefix}/*") for prefix in WRITABLE_PREFIXES],
            ),
            iam.PolicyStatement(
                sid="UseProjectKey",
                actions=[
                    "kms:Decrypt",
                    "kms:Encrypt",
                    "kms:GenerateDataKey",
                    "kms:GenerateDataKeyWithoutPlaintext",
                    "kms:ReEncryptFrom",
                    "kms:ReEncryptTo",
                    "kms:DescribeKey",
                    "kms:CreateGrant",
                ],
                resources=[key.key_arn],
            ),
        )

        # Container images: AWS's PyTorch DLC repositories in this region's registry account.
        registry_account = pytorch_registry_account(self)
        policy.add_statements(
            iam.PolicyStatement(
                sid="PullPyTorchImages",
                actions=[
                    "ecr:BatchCheckLayerAvailability",
                    "ecr:BatchGetImage",
                    "ecr:GetDownloadUrlForLayer",
                ],
                resources=[
                    Fn.join(
                        "",
                        ["arn:", Aws.PARTITION, ":ecr:", Aws.REGION, ":", registry_account,
                         f":repository/{repository}"],
                    )
                    for repository in DLC_REPOSITORIES
                ],
            ),
            iam.PolicyStatement(
                sid="EcrLogin",
                actions=["ecr:GetAuthorizationToken"],
                resources=["*"],
            ),
        )

        # Logs and metrics of its own jobs and endpoints.
        log_group_arn = f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:"
        policy.add_statements(
            iam.PolicyStatement(
                sid="WriteJobLogs",
                actions=[
                    "logs:CreateLogGroup",
                    "logs:CreateLogStream",
                    "logs:PutLogEvents",
                    "logs:DescribeLogStreams",
                ],
                resources=[
                    f"{log_group_arn}/aws/sagemaker/ProcessingJobs:*",
                    f"{log_group_arn}/aws/sagemaker/TrainingJobs:*",
                    f"{log_group_arn}/aws/sagemaker/Endpoints/{names.sagemaker_resource_prefix}*",
                ],
            ),
            iam.PolicyStatement(
                sid="PublishMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={
                    "StringLike": {
                        "cloudwatch:namespace": [
                            "/aws/sagemaker/*",
                            names.metric_namespace,
                        ]
                    }
                },
            ),
        )

        # What SageMaker Pipelines does on the pipeline's behalf, with this same role.
        arn = f"arn:{Aws.PARTITION}:sagemaker:{Aws.REGION}:{Aws.ACCOUNT_ID}"
        policy.add_statements(
            iam.PolicyStatement(
                sid="RunPipelineJobs",
                actions=[
                    "sagemaker:CreateProcessingJob",
                    "sagemaker:DescribeProcessingJob",
                    "sagemaker:StopProcessingJob",
                    "sagemaker:CreateTrainingJob",
                    "sagemaker:DescribeTrainingJob",
                    "sagemaker:StopTrainingJob",
                    "sagemaker:AddTags",
                ],
                resources=[
                    f"{arn}:processing-job/{PIPELINE_JOB_PREFIX}*",
                    f"{arn}:training-job/{PIPELINE_JOB_PREFIX}*",
                ],
            ),
            iam.PolicyStatement(
                sid="RegisterModels",
                actions=[
                    "sagemaker:CreateModelPackage",
                    "sagemaker:DescribeModelPackage",
                    "sagemaker:DescribeModelPackageGroup",
                    "sagemaker:ListModelPackages",
                    "sagemaker:AddTags",
                ],
                resources=[
                    f"{arn}:model-package-group/{names.model_package_group}",
                    f"{arn}:model-package/{names.model_package_group}/*",
                ],
            ),
            iam.PolicyStatement(
                sid="PassOnlyThisRoleToSageMaker",
                actions=["iam:PassRole"],
                resources=[self.role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": SAGEMAKER_PRINCIPAL}},
            ),
        )
        policy.attach_to_role(self.role)
        self._acknowledge_wildcards(names, bucket)

    def _acknowledge_wildcards(self, names: Names, bucket: s3.IBucket) -> None:
        """Each wildcard is acknowledged on its own, with why it cannot be narrower."""
        bucket_arn = f"<{Stack.of(bucket).get_logical_id(bucket.node.default_child)}.Arn>"
        arn = "arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>"
        log_group_arn = "arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:"
        reasons = {
            **{
                f"{bucket_arn}/{prefix}/*": (
                    f"Jobs read objects whose keys are only known at run time under the project's "
                    f"{prefix}/ prefix; the wildcard is limited to that prefix, read only."
                )
                for prefix in READ_ONLY_PREFIXES
            },
            **{
                f"{bucket_arn}/{prefix}/*": (
                    f"Jobs write and read back outputs whose keys are only known at run time under "
                    f"the project's {prefix}/ prefix; the wildcard is limited to that prefix."
                )
                for prefix in WRITABLE_PREFIXES
            },
            "*": (
                "ecr:GetAuthorizationToken and cloudwatch:PutMetricData support no resource-level "
                "scoping; PutMetricData is limited by a cloudwatch:namespace condition instead."
            ),
            f"{log_group_arn}/aws/sagemaker/ProcessingJobs:*": (
                "SageMaker writes every processing job's logs to this fixed group with per-job "
                "streams whose names are generated at run time."
            ),
            f"{log_group_arn}/aws/sagemaker/TrainingJobs:*": (
                "SageMaker writes every training job's logs to this fixed group with per-job "
                "streams whose names are generated at run time."
            ),
            f"{log_group_arn}/aws/sagemaker/Endpoints/{names.sagemaker_resource_prefix}*": (
                "Endpoint log groups are named after the endpoint; the wildcard is limited to this "
                "environment's endpoint names."
            ),
            f"{arn}:processing-job/{PIPELINE_JOB_PREFIX}*": (
                "SageMaker Pipelines names its jobs pipelines-<execution>-<step>-<hash> at run "
                "time; the wildcard is limited to pipeline-started processing jobs."
            ),
            f"{arn}:training-job/{PIPELINE_JOB_PREFIX}*": (
                "SageMaker Pipelines names its jobs pipelines-<execution>-<step>-<hash> at run "
                "time; the wildcard is limited to pipeline-started training jobs."
            ),
            f"{arn}:model-package/{names.model_package_group}/*": (
                "Model package versions are numbered by SageMaker on registration; the wildcard "
                "is limited to versions in this environment's model package group."
            ),
        }
        for resource, reason in reasons.items():
            acknowledge(self.policy, f"AwsSolutions-IAM5[Resource::{resource}]", reason)
