"""CloudAssembly's CloudFormation resolver on a tiny hand-written assembly: what Ref and Fn::GetAtt
return per resource type (CloudFormation's documented return values), generated names, and the
intrinsics it evaluates or refuses."""

from __future__ import annotations

import json
import uuid

import pytest

from dogbreeds.cloud_assembly import AssemblyError, CloudAssembly

ACCOUNT, REGION = "111122223333", "eu-west-1"

PRODUCER = {
    "Resources": {
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "jobs"}},
    },
    "Outputs": {
        "QueueArn": {"Value": {"Fn::GetAtt": ["Queue", "Arn"]}, "Export": {"Name": "shared-queue-arn"}},
    },
}

CONSUMER = {
    "Parameters": {
        "Stage": {"Type": "String", "Default": "dev"},
        "Required": {"Type": "String"},
        "Stored": {"Type": "AWS::SSM::Parameter::Value<String>", "Default": "/app/stored"},
    },
    "Resources": {
        "Data": {
            "Type": "AWS::S3::Bucket",
            "Properties": {"BucketName": {"Fn::Sub": "data-${AWS::AccountId}"}},
        },
        "Logs": {"Type": "AWS::S3::Bucket"},
        "Key": {"Type": "AWS::KMS::Key", "Properties": {"KeyPolicy": {}}},
        "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {}}},
        "Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "alerts"}},
        "Function": {"Type": "AWS::Lambda::Function", "Properties": {"FunctionName": "deploy"}},
        "Group": {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": "/app/deploy"}},
        "Rule": {"Type": "AWS::Events::Rule", "Properties": {"Name": "failed"}},
        "Alarm": {"Type": "AWS::CloudWatch::Alarm", "Properties": {"AlarmName": "errors"}},
        "Schedule": {"Type": "AWS::Scheduler::Schedule", "Properties": {"Name": "nightly"}},
        "Permission": {"Type": "AWS::Lambda::Permission", "Properties": {"FunctionName": "deploy"}},
        "Wiring": {
            "Type": "AWS::CloudFormation::WaitConditionHandle",
            "Properties": {
                "Actions": [{"Ref": "Topic"}, {"Ref": "AWS::NoValue"}],
                "Optional": {"Ref": "AWS::NoValue"},
                "Queue": {"Fn::ImportValue": "shared-queue-arn"},
                "Literal": {"Fn::Sub": "${!Literal} ${Function.Arn} ${Stage}"},
                "Parts": {"Fn::Join": ["/", {"Fn::Split": [",", "a,b"]}]},
            },
        },
    },
}


@pytest.fixture
def assembly(tmp_path) -> CloudAssembly:
    artifacts = {}
    for name, template in (("producer", PRODUCER), ("consumer", CONSUMER)):
        (tmp_path / f"{name}.template.json").write_text(json.dumps(template))
        artifacts[name] = {
            "type": "aws:cloudformation:stack",
            "environment": "aws://unknown-account/unknown-region",
            "properties": {"templateFile": f"{name}.template.json"},
        }
    (tmp_path / "manifest.json").write_text(json.dumps({"artifacts": artifacts}))
    return CloudAssembly.load(tmp_path, account=ACCOUNT, region=REGION)


def _resource(assembly: CloudAssembly, logical_id: str):
    [found] = [r for r in assembly.resources() if r.logical_id == logical_id]
    return found


@pytest.mark.parametrize(
    ("logical_id", "ref", "attribute", "value"),
    [
        ("Data", "data-111122223333", "Arn", "arn:aws:s3:::data-111122223333"),
        ("Logs", "consumer-logs-example", "Arn", "arn:aws:s3:::consumer-logs-example"),
        ("Role", "consumer-Role-EXAMPLE", "Arn", "arn:aws:iam::111122223333:role/consumer-Role-EXAMPLE"),
        ("Topic", "arn:aws:sns:eu-west-1:111122223333:alerts", "TopicName", "alerts"),
        ("Function", "deploy", "Arn", "arn:aws:lambda:eu-west-1:111122223333:function:deploy"),
        ("Group", "/app/deploy", "Arn", "arn:aws:logs:eu-west-1:111122223333:log-group:/app/deploy:*"),
        ("Rule", "failed", "Arn", "arn:aws:events:eu-west-1:111122223333:rule/failed"),
        ("Alarm", "errors", "Arn", "arn:aws:cloudwatch:eu-west-1:111122223333:alarm:errors"),
        ("Schedule", "nightly", "Arn", "arn:aws:scheduler:eu-west-1:111122223333:schedule/default/nightly"),
    ],
)
def test_ref_and_get_att_follow_cloudformations_return_values(assembly, logical_id, ref, attribute, value):
    resource = _resource(assembly, logical_id)
    assert assembly.ref(resource) == ref
    assert assembly.get_att(resource, attribute) == value


def test_queue_ref_is_its_url_and_key_ref_its_key_id(assembly):
    queue = _resource(assembly, "Queue")
    assert assembly.ref(queue) == "https://sqs.eu-west-1.amazonaws.com/111122223333/jobs"
    assert assembly.get_att(queue, "Arn") == "arn:aws:sqs:eu-west-1:111122223333:jobs"
    key = _resource(assembly, "Key")
    key_id = assembly.ref(key)
    assert str(uuid.UUID(key_id)) == key_id
    assert assembly.get_att(key, "Arn") == f"arn:aws:kms:eu-west-1:111122223333:key/{key_id}"


def test_resources_are_resolved(assembly):
    assert [r.stack for r in assembly.resources("AWS::SQS::Queue")] == ["producer"]
    wiring = _resource(assembly, "Wiring").properties
    assert wiring == {
        "Actions": ["arn:aws:sns:eu-west-1:111122223333:alerts"],
        "Queue": "arn:aws:sqs:eu-west-1:111122223333:jobs",
        "Literal": "${Literal} arn:aws:lambda:eu-west-1:111122223333:function:deploy dev",
        "Parts": "a/b",
    }


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"Fn::GetAtt": ["Function", "SnapStartResponse"]}, "Function.SnapStartResponse is not modelled"),
        ({"Ref": "Permission"}, "AWS::Lambda::Permission is not modelled"),
        ({"Ref": "Required"}, "parameter Required has no default value"),
        # The default of an SSM-typed parameter is the SSM name, not the value CloudFormation passes.
        ({"Ref": "Stored"}, "parameter Stored is read from SSM Parameter Store"),
        ({"Fn::If": ["IsProd", "a", "b"]}, "Fn::If is not supported"),
    ],
)
def test_what_is_not_modelled_raises(assembly, value, message):
    with pytest.raises(AssemblyError, match=message):
        assembly.resolve(assembly.stacks["consumer"], value)
