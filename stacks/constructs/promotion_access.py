"""What promotion needs, and nothing more: the target's promotion role, and in a source
environment in another account, the grants that role needs there.

Promotion (``dogbreeds models promote``, dogbreeds/promotion.py) runs as the target
environment's ``<target>-promotion`` role. It

* reads the version in the source: DescribeModelPackage, its endpoint chain (which version is
  live, since when), the alarm history of the gate alarms and the live-accuracy metrics;
* copies the model, metrics and baselines from the source bucket's model prefixes
  (``pipeline-runs/``, ``promoted/``) into ``promoted/<source>/v<N>/`` of the target bucket
  (server-side CopyObject: read with the source key, written with the target key);
* registers the copy in the target's model package group, PendingManualApproval unless the
  target's ``promotion.approve`` says Approved (a condition on the approval status enforces it).

Same account: the role's own policy covers all of it (the key policy delegates to IAM).
Across accounts: the source's bucket policy and key policy admit exactly that role (by
``aws:PrincipalArn``) for reads of the model prefixes and decryption through S3, and a read-only
evidence role in the source account, assumable only by that role, reads the registry, the
endpoint chain, the alarms and the metrics there.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Aws, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from contract.naming import MODEL_PREFIXES, PROMOTED_PREFIX, Names
from contract.promotion_gates import gate_alarm_names
from contract.settings import EnvironmentSettings, cross_account
from stacks.nag import acknowledge

PENDING = "PendingManualApproval"
APPROVED = "Approved"


@dataclass(frozen=True)
class Place:
    """Where ARNs point: built once with CloudFormation tokens for the template, once with the
    placeholders cdk-nag prints, so that each wildcard is acknowledged by its exact finding."""

    partition: str
    region: str
    account: str

    @classmethod
    def tokens(cls, account: str | None = None, region: str | None = None) -> Place:
        return cls(Aws.PARTITION, region or Aws.REGION, account or Aws.ACCOUNT_ID)

    @classmethod
    def nag(cls, account: str | None = None, region: str | None = None) -> Place:
        return cls("<AWS::Partition>", region or "<AWS::Region>", account or "<AWS::AccountId>")

    def arn(self, service: str, resource: str) -> str:
        return f"arn:{self.partition}:{service}:{self.region}:{self.account}:{resource}"

    def bucket_arn(self, names: Names) -> str:
        return f"arn:{self.partition}:s3:::{names.bucket(self.account, self.region)}"


# Why each wildcard is there, by statement id.
WILDCARD_REASONS = {
    "ReadSourceVersions": "SageMaker numbers versions on registration; the wildcard is limited to "
    "versions of the source environment's model package group.",
    "ListVersions": "sagemaker:ListModelPackages has no resource-level permissions; it lists "
    "summaries only, details are read through the scoped DescribeModelPackage.",
    "ReadSourceEndpointChain": "The deploy Lambda names endpoint configs and models per version at "
    "deploy time; the wildcards are limited to the source environment's config and model prefixes.",
    "ReadLiveAccuracy": "cloudwatch:GetMetricStatistics has no resources or condition keys; it reads "
    "metric values only (the source's Accuracy and LabelledRecords).",
    "ReadTrainingParameters": "Execution ids are chosen by SageMaker Pipelines; the wildcard is "
    "limited to executions of the source's training pipeline.",
    "ReadSourceModelObjects": "Models, metrics and baselines live under run-specific keys below the "
    "source's model prefixes (pipeline-runs/, promoted/), and nowhere else.",
    "DecryptSourceObjects": "The source key's id is not known outside its stack: the statement "
    "matches it by its alias (kms:ResourceAliases) and only through S3 (kms:ViaService).",
    "RegisterPromotedVersion": "SageMaker numbers versions on registration; the wildcard is "
    "limited to versions of this environment's group, and the approval status by condition.",
    "ReadTargetVersions": "Finding a version promoted before: versions of this environment's group.",
    "WritePromotedCopies": "Copies go to promoted/<source>/v<version>/ keys; writes are limited to "
    "promoted/.",
}


def source_read_statements(
    source: Names, source_settings: EnvironmentSettings, at: Place
) -> list[iam.PolicyStatement]:
    """Reading a version and its evidence in the source environment: the registry, the endpoint
    chain, the gate alarms, the live-accuracy metrics."""
    statements = [
        iam.PolicyStatement(
            sid="ReadSourceVersions",
            actions=["sagemaker:DescribeModelPackage"],
            resources=[at.arn("sagemaker", f"model-package/{source.model_package_group}/*")],
        ),
        iam.PolicyStatement(sid="ListVersions", actions=["sagemaker:ListModelPackages"], resources=["*"]),
        iam.PolicyStatement(
            sid="ReadSourceEndpointChain",
            actions=[
                "sagemaker:DescribeEndpoint",
                "sagemaker:DescribeEndpointConfig",
                "sagemaker:DescribeModel",
            ],
            resources=[
                at.arn("sagemaker", f"endpoint/{source.endpoint}"),
                at.arn("sagemaker", f"endpoint-config/{source.endpoint_config_prefix}-*"),
                at.arn("sagemaker", f"model/{source.model_prefix}-*"),
            ],
        ),
        iam.PolicyStatement(
            sid="ReadGateAlarms",
            actions=["cloudwatch:DescribeAlarmHistory", "cloudwatch:DescribeAlarms"],
            resources=[
                at.arn("cloudwatch", f"alarm:{name}") for name in gate_alarm_names(source, source_settings)
            ],
        ),
    ]
    if source_settings.monitoring.enabled:
        statements.append(
            iam.PolicyStatement(
                sid="ReadLiveAccuracy", actions=["cloudwatch:GetMetricStatistics"], resources=["*"]
            )
        )
    if source_settings.training.enabled:
        statements.append(
            iam.PolicyStatement(
                # The dataset of the training execution, for the promoted version's lineage.
                sid="ReadTrainingParameters",
                actions=["sagemaker:ListPipelineParametersForExecution"],
                resources=[at.arn("sagemaker", f"pipeline/{source.training_pipeline.lower()}/execution/*")],
            )
        )
    return statements


def object_read_statements(source: Names, at: Place) -> list[iam.PolicyStatement]:
    """Reading the source's model objects, decrypting them through S3 with the source key (found
    by its alias: the key id is not known outside the source's stack)."""
    bucket_arn = at.bucket_arn(source)
    return [
        iam.PolicyStatement(
            sid="ReadSourceModelObjects",
            actions=["s3:GetObject"],
            resources=[f"{bucket_arn}/{prefix}/*" for prefix in MODEL_PREFIXES],
        ),
        iam.PolicyStatement(
            sid="ListSourceModelPrefixes",
            actions=["s3:ListBucket"],
            resources=[bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{prefix}/*" for prefix in MODEL_PREFIXES]}},
        ),
        iam.PolicyStatement(
            sid="DecryptSourceObjects",
            actions=["kms:Decrypt"],
            resources=[at.arn("kms", "key/*")],
            conditions={
                "ForAnyValue:StringEquals": {"kms:ResourceAliases": [source.kms_alias]},
                "StringEquals": {"kms:ViaService": f"s3.{at.region}.amazonaws.com"},
            },
        ),
    ]


def acknowledge_wildcards(policy: iam.Policy, statements: list[iam.PolicyStatement]) -> None:
    """Acknowledge each wildcard resource of ``statements`` (built with ``Place.nag``) with the
    reason of its statement."""
    for statement in statements:
        for resource in statement.resources:
            if "*" in resource:
                acknowledge(
                    policy, f"AwsSolutions-IAM5[Resource::{resource}]", WILDCARD_REASONS[statement.sid]
                )


class PromotionRole(Construct):
    """In the target environment: the role that promotes versions into it."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: Names,
        settings: EnvironmentSettings,
        source: Names,
        source_settings: EnvironmentSettings,
        bucket: s3.IBucket,
        key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        assert settings.promotion is not None
        other_account = cross_account(settings, source_settings)
        source_account = source_settings.account if other_account else None
        self.role = iam.Role(
            self,
            "Role",
            role_name=names.promotion_role,
            # Operators of this account whose own policies allow sts:AssumeRole on it.
            assumed_by=iam.AccountRootPrincipal(),
            description=f"Promotes versions of {source.model_package_group} into {names.model_package_group}",
        )
        statuses = [PENDING, APPROVED] if settings.promotion.approve else [PENDING]

        def statements(here: Place, there: Place, own_bucket: str) -> list[iam.PolicyStatement]:
            built = [
                iam.PolicyStatement(
                    sid="RegisterPromotedVersion",
                    actions=["sagemaker:CreateModelPackage"],
                    resources=[here.arn("sagemaker", f"model-package/{names.model_package_group}/*")],
                    conditions={"StringEquals": {"sagemaker:ModelApprovalStatus": statuses}},
                ),
                iam.PolicyStatement(
                    sid="ReadTargetVersions",
                    actions=["sagemaker:DescribeModelPackage"],
                    resources=[here.arn("sagemaker", f"model-package/{names.model_package_group}/*")],
                ),
                iam.PolicyStatement(
                    sid="FindTargetGroup",
                    actions=["sagemaker:DescribeModelPackageGroup"],
                    resources=[here.arn("sagemaker", f"model-package-group/{names.model_package_group}")],
                ),
                iam.PolicyStatement(
                    sid="WritePromotedCopies",
                    actions=["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"],
                    resources=[f"{own_bucket}/{PROMOTED_PREFIX}/*"],
                ),
                iam.PolicyStatement(
                    sid="EncryptPromotedCopies",
                    actions=["kms:GenerateDataKey", "kms:Decrypt"],
                    resources=[key.key_arn],
                ),
                *object_read_statements(source, there),
            ]
            if other_account:
                built.append(
                    iam.PolicyStatement(
                        sid="ListVersions", actions=["sagemaker:ListModelPackages"], resources=["*"]
                    )
                )
                built.append(
                    iam.PolicyStatement(
                        sid="AssumeSourceEvidenceRole",
                        actions=["sts:AssumeRole"],
                        resources=[
                            f"arn:{there.partition}:iam::{there.account}:role/"
                            f"{source.promotion_evidence_role(names.env)}"
                        ],
                    )
                )
            else:
                built += source_read_statements(source, source_settings, there)
            return built

        self.policy = iam.Policy(
            self,
            "Policy",
            policy_name=names.promotion_role,
            statements=statements(
                Place.tokens(), Place.tokens(source_account, source_settings.region), bucket.bucket_arn
            ),
        )
        self.policy.attach_to_role(self.role)
        bucket_id = Stack.of(bucket).get_logical_id(bucket.node.default_child)
        acknowledge_wildcards(
            self.policy,
            statements(Place.nag(), Place.nag(source_account, source_settings.region), f"<{bucket_id}.Arn>"),
        )


class SourceGrants(Construct):
    """In a source environment: what a cross-account target's promotion role may do here."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: Names,
        settings: EnvironmentSettings,
        target: Names,
        target_settings: EnvironmentSettings,
        bucket: s3.Bucket,
        key: kms.Key,
    ) -> None:
        super().__init__(scope, construct_id)
        assert target_settings.account is not None
        promoter = f"arn:{Aws.PARTITION}:iam::{target_settings.account}:role/{target.promotion_role}"
        only_promoter = {"ArnEquals": {"aws:PrincipalArn": promoter}}
        # The account as principal and the role by condition: a policy naming a role that does not
        # exist yet (the target may deploy later) would be refused.
        principal = iam.AccountPrincipal(target_settings.account)
        sid = f"PromotionTo{target.env.capitalize()}"
        bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid=f"{sid}ReadsModels",
                principals=[principal],
                actions=["s3:GetObject"],
                resources=[bucket.arn_for_objects(f"{prefix}/*") for prefix in MODEL_PREFIXES],
                conditions=only_promoter,
            )
        )
        bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid=f"{sid}ListsModels",
                principals=[principal],
                actions=["s3:ListBucket"],
                resources=[bucket.bucket_arn],
                conditions={
                    **only_promoter,
                    "StringLike": {"s3:prefix": [f"{prefix}/*" for prefix in MODEL_PREFIXES]},
                },
            )
        )
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid=f"{sid}DecryptsThroughS3",
                principals=[principal],
                actions=["kms:Decrypt"],
                resources=["*"],  # in a key policy, "*" is this key
                conditions={
                    **only_promoter,
                    "StringEquals": {"kms:ViaService": f"s3.{Aws.REGION}.amazonaws.com"},
                },
            )
        )
        self.evidence_role = iam.Role(
            self,
            "EvidenceRole",
            role_name=names.promotion_evidence_role(target.env),
            assumed_by=iam.AccountPrincipal(target_settings.account).with_conditions(only_promoter),
            description=f"Read-only: {target.promotion_role} reads a version of "
            f"{names.model_package_group} and the evidence of its time live",
        )
        self.policy = iam.Policy(
            self,
            "EvidencePolicy",
            policy_name=names.promotion_evidence_role(target.env),
            statements=source_read_statements(names, settings, Place.tokens()),
        )
        self.policy.attach_to_role(self.evidence_role)
        acknowledge_wildcards(self.policy, source_read_statements(names, settings, Place.nag()))
