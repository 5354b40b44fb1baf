"""The environment's one alerts topic: failed pipelines, endpoint rollbacks, drift and quality alarms."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from stacks.naming import Names

# Services that publish to the topic: EventBridge rules and CloudWatch alarms. The topic is
# KMS-encrypted, so they need to use the key as well as publish.
PUBLISHING_SERVICES = ("events.amazonaws.com", "cloudwatch.amazonaws.com")


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
        for service in PUBLISHING_SERVICES:
            principal = iam.ServicePrincipal(service)
            self.topic.grant_publish(principal)
            key.add_to_resource_policy(
                iam.PolicyStatement(
                    sid=f"AllowPublishToAlertsFrom{service.split('.')[0].title()}",
                    actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                    principals=[principal],
                    resources=["*"],  # in a key policy, "*" means this key
                )
            )
