"""The role endpoints run models as: read the artifact, write capture, pull the inference image.

Endpoints serve untrusted traffic, so they do not share the pipeline's execution role, which can
write datasets, start jobs and register models.
"""

from __future__ import annotations

from aws_cdk import Aws, Fn, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from contract.naming import CAPTURE_PREFIX, MODEL_PREFIXES, PIPELINE_RUNS_PREFIX, PROMOTED_PREFIX, Names
from stacks.dlc_registries import pytorch_registry_account
from stacks.nag import acknowledge

SAGEMAKER_PRINCIPAL = "sagemaker.amazonaws.com"
INFERENCE_REPOSITORY = "pytorch-inference"


class EndpointRole(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, names: Names, bucket: s3.IBucket, key: kms.IKey
    ) -> None:
        super().__init__(scope, construct_id)
        self.role = iam.Role(
            self,
            "Role",
            role_name=names.endpoint_role,
            assumed_by=iam.ServicePrincipal(SAGEMAKER_PRINCIPAL),
            description=f"Models served by {names.endpoint}: artifact read, capture write, image pull",
        )
        log_groups = (
            f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:"
            f"/aws/sagemaker/Endpoints/{names.sagemaker_resource_prefix}*"
        )
        self.policy = iam.Policy(
            self,
            "Policy",
            policy_name=names.endpoint_role,
            roles=[self.role],
            statements=[
                iam.PolicyStatement(
                    sid="ReadModelArtifacts",
                    actions=["s3:GetObject"],
                    resources=[bucket.arn_for_objects(f"{prefix}/*") for prefix in MODEL_PREFIXES],
                ),
                iam.PolicyStatement(
                    sid="WriteDataCapture",
                    actions=["s3:PutObject"],
                    resources=[bucket.arn_for_objects(f"{CAPTURE_PREFIX}/*")],
                ),
                iam.PolicyStatement(
                    sid="UseProjectKey",
                    actions=["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
                    resources=[key.key_arn],
                ),
                iam.PolicyStatement(
                    sid="PullInferenceImage",
                    actions=[
                        "ecr:BatchCheckLayerAvailability",
                        "ecr:BatchGetImage",
                        "ecr:GetDownloadUrlForLayer",
                    ],
                    resources=[
                        Fn.join(
                            "",
                            ["arn:", Aws.PARTITION, ":ecr:", Aws.REGION, ":", pytorch_registry_account(self),
                             f":repository/{INFERENCE_REPOSITORY}"],
                        )
                    ],
                ),
                iam.PolicyStatement(sid="EcrLogin", actions=["ecr:GetAuthorizationToken"], resources=["*"]),
                iam.PolicyStatement(
                    sid="WriteEndpointLogs",
                    actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[log_groups, f"{log_groups}:*"],
                ),
                iam.PolicyStatement(
                    sid="PublishEndpointMetrics",
                    actions=["cloudwatch:PutMetricData"],
                    resources=["*"],
                    conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/Endpoints*"}},
                ),
            ],
        )
        bucket_arn = f"<{Stack.of(bucket).get_logical_id(bucket.node.default_child)}.Arn>"
        log_arn = "arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:"
        endpoint_logs = f"{log_arn}/aws/sagemaker/Endpoints/{names.sagemaker_resource_prefix}*"
        reasons = {
            f"{bucket_arn}/{PIPELINE_RUNS_PREFIX}/*": (
                "Model artifacts are written by pipeline executions under run-specific keys; the "
                "endpoint may only read below pipeline-runs/."
            ),
            f"{bucket_arn}/{PROMOTED_PREFIX}/*": (
                "Promoted versions are copied under promoted/<source>/v<version>/; the endpoint may "
                "only read below promoted/."
            ),
            f"{bucket_arn}/{CAPTURE_PREFIX}/*": (
                "SageMaker writes data capture under dated keys it chooses; the endpoint may only "
                "write below capture/."
            ),
            "*": (
                "ecr:GetAuthorizationToken and cloudwatch:PutMetricData support no resource-level "
                "scoping; PutMetricData is limited by a namespace condition."
            ),
            endpoint_logs: "Endpoint log groups are named after the endpoint; limited to this environment's.",
            f"{endpoint_logs}:*": "Log streams per instance are named by SageMaker at run time.",
        }
        for resource, reason in reasons.items():
            acknowledge(self.policy, f"AwsSolutions-IAM5[Resource::{resource}]", reason)
