"""The project's encrypted data bucket, its access-log bucket and the customer-managed key."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from contract.naming import ACCESS_LOG_BUCKET, DATA_BUCKET, EXPIRING_PREFIXES, Names


class SecureStorage(Construct):
    """KMS key with rotation, a TLS-only private versioned bucket, and server access logs.

    Capture and monitoring outputs expire after ``data_retention_days``; noncurrent versions after
    ``noncurrent_version_retention_days``. With ``destroy`` the buckets are emptied and deleted with the
    stack (meant for dev); otherwise key and buckets outlive the stack.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: Names,
        account: str,
        region: str,
        destroy_on_delete: bool,
        data_retention_days: int,
        noncurrent_version_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        removal = RemovalPolicy.DESTROY if destroy_on_delete else RemovalPolicy.RETAIN

        self.key = kms.Key(
            self,
            "Key",
            alias=names.kms_alias,
            description=f"Encrypts {names.base} data, models, capture and monitoring outputs",
            enable_key_rotation=True,
            removal_policy=removal,
        )

        # Access-log delivery only supports SSE-S3 on the target bucket, not SSE-KMS.
        self.access_log_bucket = s3.Bucket(
            self,
            "AccessLogBucket",
            bucket_name=names.bucket(account, region, ACCESS_LOG_BUCKET),
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=False,
            lifecycle_rules=[
                s3.LifecycleRule(id="expire-access-logs", expiration=Duration.days(365)),
            ],
            removal_policy=removal,
            auto_delete_objects=destroy_on_delete,
        )

        self.bucket = s3.Bucket(
            self,
            "DataBucket",
            bucket_name=names.bucket(account, region, DATA_BUCKET),
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            server_access_logs_bucket=self.access_log_bucket,
            server_access_logs_prefix="data-bucket/",
            lifecycle_rules=[
                *(
                    s3.LifecycleRule(
                        id=f"expire-{prefix}",
                        prefix=f"{prefix}/",
                        expiration=Duration.days(data_retention_days),
                    )
                    for prefix in EXPIRING_PREFIXES
                ),
                s3.LifecycleRule(
                    id="expire-noncurrent-versions",
                    noncurrent_version_expiration=Duration.days(noncurrent_version_retention_days),
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                ),
            ],
            removal_policy=removal,
            auto_delete_objects=destroy_on_delete,
        )
