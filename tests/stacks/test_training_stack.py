"""TrainingStack: the pipeline shipped with tokens in place of placeholders, the package group it
registers into,
code read access, and alerts for failed executions."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Template
from cdk_helpers import build_app

from contract.naming import Names
from stacks.constructs.training_pipeline import PLACEHOLDERS


@pytest.fixture(scope="module")
def stacks():
    _, stacks = build_app("dev")
    return stacks


@pytest.fixture(scope="module")
def template(stacks) -> Template:
    return Template.from_stack(stacks.training)


def _definition_parts(template: Template) -> list:
    [pipeline] = template.find_resources("AWS::SageMaker::Pipeline").values()
    body = pipeline["Properties"]["PipelineDefinition"]["PipelineDefinitionBody"]
    return body["Fn::Join"][1]


def test_pipeline_and_group_share_the_name_from_names(stacks, template):
    names = Names("dogbreeds", "dev")
    # The group is the storage stack's, so an environment without training has one too.
    Template.from_stack(stacks.storage).has_resource_properties(
        "AWS::SageMaker::ModelPackageGroup", {"ModelPackageGroupName": names.model_package_group}
    )
    template.resource_count_is("AWS::SageMaker::ModelPackageGroup", 0)
    template.has_resource_properties(
        "AWS::SageMaker::Pipeline", {"PipelineName": names.training_pipeline}
    )
    text = json.dumps(_definition_parts(template))
    assert f'\\"ModelPackageGroupName\\":\\"{names.model_package_group}\\"' in text


def test_no_placeholder_survives_and_tokens_take_their_place(template):
    parts = _definition_parts(template)
    literal = "".join(p for p in parts if isinstance(p, str))
    for placeholder in PLACEHOLDERS.values():
        assert placeholder not in literal
    tokens = json.dumps([p for p in parts if not isinstance(p, str)])
    assert "Fn::ImportValue" in tokens  # bucket, role and key from the storage stack
    assert "Fn::FindInMap" in tokens  # the region's image registry
    assert "Fn::Sub" in tokens  # asset bucket of the CDK bootstrap
    # Code assets are single objects named by content hash: no zipped folders.
    assert ".zip" not in tokens + literal and ".gz" in literal


def test_execution_role_reads_and_lists_exactly_the_two_code_objects(template):
    [policy] = template.find_resources(
        "AWS::IAM::Policy", {"Properties": {"PolicyName": _policy_name(template)}}
    ).values()
    read, listing = policy["Properties"]["PolicyDocument"]["Statement"]
    assert read["Action"] == "s3:GetObject"
    assert len(read["Resource"]) == 2
    assert "*" not in json.dumps(read["Resource"])
    # SageMaker lists each code input's key before downloading it: only those two keys.
    assert listing["Action"] == "s3:ListBucket"
    keys = listing["Condition"]["StringEquals"]["s3:prefix"]
    assert sorted(r["Fn::Join"][1][-1] for r in read["Resource"]) == sorted(f"/{key}" for key in keys)
    assert "cdk-hnb659fds-assets-" in json.dumps(listing["Resource"])
    assert "*" not in json.dumps(listing["Resource"])


def _policy_name(template: Template) -> str:
    [name] = [
        p["Properties"]["PolicyName"]
        for p in template.find_resources("AWS::IAM::Policy").values()
    ]
    return name


def test_failed_executions_alert(template):
    [rule] = template.find_resources("AWS::Events::Rule").values()
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.sagemaker"]
    assert pattern["detail-type"] == ["SageMaker Model Building Pipeline Execution Status Change"]
    assert pattern["detail"]["currentPipelineExecutionStatus"] == ["Failed"]
    assert "pipeline/dogbreeds-dev-training" in json.dumps(pattern["detail"]["pipelineArn"])
    [target] = rule["Properties"]["Targets"]
    assert "Fn::ImportValue" in json.dumps(target["Arn"])  # the storage stack's alerts topic
