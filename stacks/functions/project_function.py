"""What every Lambda function of the project needs, in one construct: the runtime, the code asset
(the function's code folder plus the contract modules it carries, see ``function_code.py``), a log
group with the environment's retention, a role and a policy of the function's own, a KMS-encrypted
dead-letter queue for events that failed every retry, and the cdk-nag acknowledgements with their
reasons.

A function's construct subclasses ``ProjectFunction`` and adds its permissions and the EventBridge
rules that invoke it; the resources keep the construct paths (and so the logical IDs) they had when
each function built them itself.

No Powertools for AWS Lambda: it is not in the Lambda runtime, so it would ship either as a layer
(a change to every function's template) or installed into the asset at synth (a pip step, with
network and platform wheels, where today the asset is a plain copy). The functions need JSON log
lines and typed events and settings only; a small logger module and frozen dataclasses do that with
the standard library and boto3, which the runtime has.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.functions.function_code import FunctionCode
from stacks.nag import acknowledge

# The newest Python runtime cdk-nag's AwsSolutions-L1 accepts; boto3 ships with it, so no bundling.
RUNTIME = lambda_.Runtime.PYTHON_3_14
LAMBDA_PRINCIPAL = "lambda.amazonaws.com"


def function_code(code: FunctionCode, handler: str) -> lambda_.Code:
    """The staged asset of ``code``; ``handler`` (``module.function``) must name one of its modules."""
    module = handler.rpartition(".")[0]
    if not (code.source_dir / f"{module}.py").is_file():
        raise ValueError(f"handler {handler!r}: {code.source_dir} has no module {module}.py")
    # Tests import the staged modules; bytecode they leave behind is not part of the asset.
    return lambda_.Code.from_asset(str(code.stage()), exclude=["__pycache__", "*.pyc"])


class ProjectFunction(Construct):
    """A function named ``function_name``: its role and policy, log group and log retention, and its
    dead-letter queue, which both Lambda (after its asynchronous retries) and the EventBridge
    targets of ``event_target`` use."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function_name: str,
        description: str,
        role_description: str,
        code: FunctionCode,
        handler: str,
        environment: Mapping[str, str],
        statements: Sequence[iam.PolicyStatement],
        key: kms.IKey,
        dead_letter_queue_name: str,
        dead_letter_owner: str,
        log_retention_days: int,
        destroy_on_delete: bool,
        timeout: Duration,
        memory_size: int,
        max_event_age: Duration,
        retry_attempts: int = 2,
    ) -> None:
        super().__init__(scope, construct_id)
        removal = RemovalPolicy.DESTROY if destroy_on_delete else RemovalPolicy.RETAIN

        # Events that failed every retry land here with the request and the error, for a redrive.
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            queue_name=dead_letter_queue_name,
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=key,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        acknowledge(
            self.dead_letter_queue,
            "AwsSolutions-SQS3",
            f"This queue is itself the dead-letter queue of {dead_letter_owner}; a queue behind it "
            "would only hold the same failed events again.",
        )
        self.log_group = logs.LogGroup(
            self, "Logs", log_group_name=f"/aws/lambda/{function_name}", removal_policy=removal
        )
        # RetentionDays is a name enum in Python; settings already restrict the value to legal days.
        self.log_group.node.default_child.retention_in_days = log_retention_days

        self.role = iam.Role(
            self,
            "Role",
            role_name=function_name,
            assumed_by=iam.ServicePrincipal(LAMBDA_PRINCIPAL),
            description=role_description,
        )
        self.log_group.grant_write(self.role)
        self.policy = iam.Policy(
            self, "Policy", policy_name=function_name, roles=[self.role], statements=list(statements)
        )

        self.function = lambda_.Function(
            self,
            "Function",
            function_name=function_name,
            description=description,
            runtime=RUNTIME,
            handler=handler,
            code=function_code(code, handler),
            role=self.role,
            log_group=self.log_group,
            timeout=timeout,
            memory_size=memory_size,
            # One invocation at a time: two events handled at once could both act on the same state.
            reserved_concurrent_executions=1,
            environment=dict(environment),
            # Asynchronous invocations: Lambda retries, then (after max_event_age at the latest, for
            # throttled events) sends the event to the queue.
            retry_attempts=retry_attempts,
            max_event_age=max_event_age,
            on_failure=destinations.SqsDestination(self.dead_letter_queue),
        )
        # The function must not run before its permissions exist (CDK only orders the default policy).
        self.function.node.add_dependency(self.policy)
        # The on-failure destination grants SendMessage through CDK's grant_send_messages, which adds
        # these KMS action groups for the queue's key.
        for action in ("kms:GenerateDataKey*", "kms:ReEncrypt*"):
            acknowledge(
                self.role,
                f"AwsSolutions-IAM5[Action::{action}]",
                f"{action} comes from CDK's SQS send grant for the dead-letter queue and is limited to "
                "the project's one key.",
            )

    def event_target(self, *, retry_attempts: int, max_event_age: Duration) -> targets.LambdaFunction:
        """An EventBridge target for this function whose undeliverable events go to its queue.

        EventBridge can encrypt into the KMS queue because the storage stack's key policy lets
        events.amazonaws.com use the key (for the alerts topic)."""
        return targets.LambdaFunction(
            self.function,
            retry_attempts=retry_attempts,
            max_event_age=max_event_age,
            dead_letter_queue=self.dead_letter_queue,
        )
