"""What every Lambda of the project shares: runtime, code asset, encrypted dead-letter queue."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.nag import acknowledge

FUNCTIONS_DIR = Path(__file__).resolve().parent
RUNTIME = lambda_.Runtime.PYTHON_3_14


def lambda_code(folder: str) -> lambda_.Code:
    """The code folder of stacks/functions/<folder>, boto3 only (the runtime has it), so no bundling step."""
    return lambda_.Code.from_asset(
        str(FUNCTIONS_DIR / folder / "code"), exclude=["__pycache__", "*.pyc", "*.md"]
    )


def dead_letter_queue(scope: Construct, *, queue_name: str, key: kms.IKey, owner: str) -> sqs.Queue:
    """A KMS-encrypted, TLS-only queue for the events ``owner`` could not handle."""
    queue = sqs.Queue(
        scope,
        "DeadLetterQueue",
        queue_name=queue_name,
        encryption=sqs.QueueEncryption.KMS,
        encryption_master_key=key,
        enforce_ssl=True,
        retention_period=Duration.days(14),
    )
    acknowledge(
        queue,
        "AwsSolutions-SQS3",
        f"This queue is itself the dead-letter queue of {owner}; a queue behind it would only hold "
        "the same failed events again.",
    )
    return queue


def acknowledge_dead_letter_grant(role: iam.IRole) -> None:
    """The on-failure destination grants SendMessage through CDK's grant_send_messages, which adds
    these KMS action groups for the queue's key."""
    for action in ("kms:GenerateDataKey*", "kms:ReEncrypt*"):
        acknowledge(
            role,
            f"AwsSolutions-IAM5[Action::{action}]",
            f"{action} comes from CDK's SQS send grant for the dead-letter queue and is limited to the "
            "project's one key.",
        )
