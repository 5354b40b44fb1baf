"""ProjectFunction alone in a bare stack: what every Lambda of the project gets from it, checked on
the construct itself rather than through the stacks that use it."""

from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk.assertions import Match, Template

from stacks.functions.function_code import FunctionCode
from stacks.functions.project_function import RUNTIME, ProjectFunction

# Any real code folder does; the construct only stages it and checks the handler's module exists.
CODE = FunctionCode("retrain_guard", contract_modules=("environment_variables.py", "events.py"))
HANDLER = "retrain_guard.handler"
NAME = "probe-function"
STATEMENT = iam.PolicyStatement(sid="OnlyThis", actions=["sqs:ListQueues"], resources=["*"])


def build(*, destroy_on_delete: bool = False, handler: str = HANDLER) -> tuple[cdk.Stack, ProjectFunction]:
    stack = cdk.Stack(cdk.App(), "Bare")
    key = kms.Key(stack, "Key")
    function = ProjectFunction(
        stack,
        "Probe",
        function_name=NAME,
        description="probe",
        role_description="probe role",
        code=CODE,
        handler=handler,
        environment={"SETTING": "value"},
        statements=[STATEMENT],
        key=key,
        dead_letter_queue_name=f"{NAME}-dlq",
        dead_letter_owner="the probe",
        log_retention_days=30,
        destroy_on_delete=destroy_on_delete,
        timeout=cdk.Duration.seconds(45),
        memory_size=256,
        max_event_age=cdk.Duration.minutes(20),
        retry_attempts=1,
    )
    return stack, function


@pytest.fixture(scope="module")
def built() -> tuple[Template, cdk.Stack, ProjectFunction]:
    stack, function = build()
    return Template.from_stack(stack), stack, function


def logical_id(stack: cdk.Stack, construct) -> str:
    return stack.resolve(construct.node.default_child.logical_id)


def test_the_function_runs_the_projects_runtime_one_at_a_time_with_its_own_role(built):
    template, stack, function = built
    template.resource_count_is("AWS::Lambda::Function", 1)
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "FunctionName": NAME,
            "Runtime": RUNTIME.name,
            "Handler": HANDLER,
            "Timeout": 45,
            "MemorySize": 256,
            "ReservedConcurrentExecutions": 1,
            "Environment": {"Variables": {"SETTING": "value"}},
            "Role": {"Fn::GetAtt": [logical_id(stack, function.role), "Arn"]},
            "LoggingConfig": {"LogGroup": {"Ref": logical_id(stack, function.log_group)}},
        },
    )
    assert RUNTIME.name.startswith("python3.")


def test_the_function_waits_for_its_policy(built):
    template, stack, function = built
    resource = template.find_resources("AWS::Lambda::Function")[logical_id(stack, function.function)]
    assert stack.resolve(function.policy.node.default_child.logical_id) in resource["DependsOn"]


def test_the_role_is_for_lambda_only_and_carries_the_given_statements(built):
    template, stack, function = built
    template.has_resource_properties(
        "AWS::IAM::Role",
        {
            "RoleName": NAME,
            "AssumeRolePolicyDocument": {
                "Statement": [
                    {
                        "Action": "sts:AssumeRole",
                        "Effect": "Allow",
                        "Principal": {"Service": "lambda.amazonaws.com"},
                    }
                ]
            },
        },
    )
    template.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyName": NAME,
            "Roles": [{"Ref": logical_id(stack, function.role)}],
            "PolicyDocument": {
                "Statement": [
                    {"Sid": "OnlyThis", "Action": "sqs:ListQueues", "Effect": "Allow", "Resource": "*"}
                ]
            },
        },
    )


def test_the_log_group_is_named_for_the_function_kept_for_the_retention_and_retained(built):
    template, stack, function = built
    template.has_resource(
        "AWS::Logs::LogGroup",
        {
            "Properties": {"LogGroupName": f"/aws/lambda/{NAME}", "RetentionInDays": 30},
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
        },
    )


def test_destroy_on_delete_deletes_the_log_group():
    stack, _ = build(destroy_on_delete=True)
    Template.from_stack(stack).has_resource("AWS::Logs::LogGroup", {"DeletionPolicy": "Delete"})


def test_the_dead_letter_queue_is_kms_encrypted_with_the_given_key_and_tls_only(built):
    template, stack, function = built
    key_id = next(iter(template.find_resources("AWS::KMS::Key")))
    template.has_resource_properties(
        "AWS::SQS::Queue",
        {
            "QueueName": f"{NAME}-dlq",
            "KmsMasterKeyId": {"Fn::GetAtt": [key_id, "Arn"]},
            "MessageRetentionPeriod": 14 * 24 * 3600,
        },
    )
    template.has_resource_properties(
        "AWS::SQS::QueuePolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
                        )
                    ]
                )
            }
        },
    )


def test_failed_asynchronous_events_go_to_the_dead_letter_queue_after_the_given_retries(built):
    template, stack, function = built
    queue = logical_id(stack, function.dead_letter_queue)
    template.has_resource_properties(
        "AWS::Lambda::EventInvokeConfig",
        {
            "MaximumRetryAttempts": 1,
            "MaximumEventAgeInSeconds": 20 * 60,
            "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": [queue, "Arn"]}}},
        },
    )
    # The role may send there (through the queue's key), whichever of its policies grants it.
    role = {"Ref": logical_id(stack, function.role)}
    actions = {
        action
        for policy in template.find_resources("AWS::IAM::Policy").values()
        if role in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    }
    assert {"sqs:SendMessage", "kms:GenerateDataKey*"} <= actions


def test_an_event_target_sends_undeliverable_events_to_the_same_queue():
    stack, function = build()
    cdk.aws_events.Rule(
        stack,
        "Rule",
        schedule=cdk.aws_events.Schedule.rate(cdk.Duration.hours(1)),
        targets=[function.event_target(retry_attempts=3, max_event_age=cdk.Duration.hours(2))],
    )
    Template.from_stack(stack).has_resource_properties(
        "AWS::Events::Rule",
        {
            "Targets": [
                Match.object_like(
                    {
                        "DeadLetterConfig": {
                            "Arn": {"Fn::GetAtt": [logical_id(stack, function.dead_letter_queue), "Arn"]}
                        },
                        "RetryPolicy": {"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 7200},
                    }
                )
            ]
        },
    )


def test_a_handler_naming_no_module_of_the_code_folder_is_refused():
    with pytest.raises(ValueError, match="has no module missing.py"):
        build(handler="missing.handler")
