"""The environment's one alerts topic: failed pipelines, endpoint rollbacks, drift and quality alarms."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Aws
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from contract.naming import Names

# Services that publish to the topic: EventBridge rules and CloudWatch alarms. The topic is
# KMS-encrypted, so they need to use the key as well as publish.
PUBLISHING_SERVICES = ("events.amazonaws.com", "cloudwatch.amazonaws.com")


def publisher_source_arns(names: Names) -> dict[str, str]:
    """Per publishing service, the ARNs of the sources that may publish: this environment's rules
    and alarms (every name starts with ``<project>-<env>-``, see contract/naming.py), in this account."""
    prefix = f"arn:{Aws.PARTITION}"
    return {
        "events.amazonaws.com": f"{prefix}:events:{Aws.REGION}:{Aws.ACCOUNT_ID}:rule/{names.base}-*",
        "cloudwatch.amazonaws.com": f"{prefix}:cloudwatch:{Aws.REGION}:{Aws.ACCOUNT_ID}:alarm:{names.base}-*",
    }


class AlertsTopic(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: Names,
        key: kms.IKey,
        emails: Sequence[str],
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(
            self,
            "Topic",
            topic_name=names.alerts_topic,
            display_name=f"{names.base} alerts",
            master_key=key,
            enforce_ssl=True,
        )
        for email in emails:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))
        sources = publisher_source_arns(names)
        for service in PUBLISHING_SERVICES:
            principal = iam.ServicePrincipal(service)
            name = service.split(".")[0].title()
            # Only this account's rules and alarms of this environment (confused-deputy guard).
            self.topic.add_to_resource_policy(
                iam.PolicyStatement(
                    sid=f"PublishFrom{name}",
                    actions=["sns:Publish"],
                    principals=[principal],
                    resources=[self.topic.topic_arn],
                    conditions={
                        "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                        "ArnLike": {"aws:SourceArn": sources[service]},
                    },
                )
            )
            key.add_to_resource_policy(
                iam.PolicyStatement(
                    sid=f"AllowPublishToAlertsFrom{name}",
                    actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                    principals=[principal],
                    resources=["*"],  # in a key policy, "*" means this key
                )
            )
        # What rules and alarms publish to: the same topic, as a reference that takes no grants.
        # CDK's SNS rule target would otherwise add an unconditioned publish statement for
        # events.amazonaws.com; the statements above already let this environment's rules publish.
        self.publishers = sns.Topic.from_topic_attributes(
            self, "ForPublishers", topic_arn=self.topic.topic_arn
        )
