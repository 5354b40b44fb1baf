"""StorageStack: encryption, TLS-only private buckets, lifecycle, and the execution role's scope."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match, Template
from cdk_helpers import build_app, project_context

from contract.naming import BUCKET_PREFIXES, EXPIRING_PREFIXES
from stacks.constructs.execution_role import READ_ONLY_PREFIXES, WRITABLE_PREFIXES


@pytest.fixture(scope="module")
def dev_template() -> Template:
    _, stacks = build_app("dev")
    return Template.from_stack(stacks.storage)


@pytest.fixture(scope="module")
def prod_template() -> Template:
    _, stacks = build_app("prod")
    return Template.from_stack(stacks.storage)


def _data_bucket(template: Template) -> dict:
    buckets = template.find_resources("AWS::S3::Bucket")
    [bucket] = [b for b in buckets.values() if "LoggingConfiguration" in b["Properties"]]
    return bucket


def test_key_rotates(dev_template):
    dev_template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    dev_template.has_resource_properties("AWS::KMS::Alias", {"AliasName": "alias/dogbreeds-dev"})


def test_data_bucket_is_kms_encrypted_versioned_private_and_logged(dev_template):
    props = _data_bucket(dev_template)["Properties"]
    [rule] = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert "KMSMasterKeyID" in rule["ServerSideEncryptionByDefault"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["LoggingConfiguration"]["LogFilePrefix"] == "data-bucket/"


def test_every_bucket_denies_plain_http(dev_template):
    policies = dev_template.find_resources("AWS::S3::BucketPolicy")
    assert len(policies) == 2
    for policy in policies.values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(
            s["Effect"] == "Deny"
            and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for s in statements
        ), statements


def test_lifecycle_expires_capture_and_monitoring_after_retention(dev_template):
    retention = project_context()["environments"]["dev"]["data_retention_days"]
    rules = _data_bucket(dev_template)["Properties"]["LifecycleConfiguration"]["Rules"]
    by_prefix = {r.get("Prefix"): r for r in rules}
    for prefix in EXPIRING_PREFIXES:
        assert by_prefix[f"{prefix}/"]["ExpirationInDays"] == retention
    # Training data and models never expire by age.
    assert "datasets/" not in by_prefix
    noncurrent = [r for r in rules if "NoncurrentVersionExpiration" in r]
    assert noncurrent[0]["NoncurrentVersionExpiration"]["NoncurrentDays"] == 7


def test_prod_retains_and_dev_destroys(dev_template, prod_template):
    prod_buckets = prod_template.find_resources("AWS::S3::Bucket")
    assert all(b["DeletionPolicy"] == "Retain" for b in prod_buckets.values())
    prod_template.resource_count_is("Custom::S3AutoDeleteObjects", 0)
    prod_template.has_resource("AWS::KMS::Key", {"DeletionPolicy": "Retain"})
    dev_buckets = dev_template.find_resources("AWS::S3::Bucket")
    assert all(b["DeletionPolicy"] == "Delete" for b in dev_buckets.values())
    dev_template.resource_count_is("Custom::S3AutoDeleteObjects", 2)


def test_execution_role_is_trusted_by_sagemaker_only(dev_template):
    roles = dev_template.find_resources(
        "AWS::IAM::Role", {"Properties": {"RoleName": "dogbreeds-dev-sagemaker-execution"}}
    )
    [role] = roles.values()
    [statement] = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    assert statement["Action"] == "sts:AssumeRole"
    assert "ManagedPolicyArns" not in role["Properties"]


def _execution_statements(template: Template) -> dict[str, dict]:
    [policy] = template.find_resources(
        "AWS::IAM::Policy", {"Properties": {"PolicyName": "dogbreeds-dev-sagemaker-execution"}}
    ).values()
    return {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}


def test_execution_role_data_access_is_limited_to_project_prefixes(dev_template):
    statements = _execution_statements(dev_template)
    read = statements["ReadInputPrefixes"]
    write = statements["ReadWriteOutputPrefixes"]
    assert read["Action"] == "s3:GetObject"
    assert "s3:PutObject" in write["Action"] and "s3:DeleteObject" in write["Action"]
    read_resources, write_resources = json.dumps(read["Resource"]), json.dumps(write["Resource"])
    # Jobs only read inputs; they write step outputs and monitoring reports.
    assert set(READ_ONLY_PREFIXES) | set(WRITABLE_PREFIXES) == set(BUCKET_PREFIXES)
    assert set(WRITABLE_PREFIXES) == {"pipeline-runs", "monitoring"}
    for prefix in READ_ONLY_PREFIXES:
        assert f"/{prefix}/*" in read_resources and f"/{prefix}/*" not in write_resources
    for prefix in WRITABLE_PREFIXES:
        assert f"/{prefix}/*" in write_resources and f"/{prefix}/*" not in read_resources
    assert '"*"' not in read_resources + write_resources
    listed = statements["ListProjectPrefixes"]["Condition"]["StringLike"]["s3:prefix"]
    assert set(listed) == {"", *[f"{p}/*" for p in BUCKET_PREFIXES]}


def test_execution_role_scope(dev_template):
    statements = _execution_statements(dev_template)
    assert statements["PassOnlyThisRoleToSageMaker"]["Condition"] == {
        "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
    }
    register = json.dumps(statements["RegisterModels"]["Resource"])
    assert "model-package-group/dogbreeds-dev-models" in register
    assert "model-package/dogbreeds-dev-models/*" in register
    pull = json.dumps(statements["PullPyTorchImages"]["Resource"])
    assert "repository/pytorch-training" in pull and "repository/pytorch-inference" in pull
    assert statements["PublishMetrics"]["Condition"]["StringLike"]["cloudwatch:namespace"] == [
        "/aws/sagemaker/*",
        "dogbreeds/dev",
    ]
    # Only the two actions that support no resource scoping get "*".
    wildcard_actions = {
        action
        for s in statements.values()
        if s["Resource"] == "*"
        for action in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert wildcard_actions == {"ecr:GetAuthorizationToken", "cloudwatch:PutMetricData"}


def test_image_registry_mapping_covers_main_regions(dev_template):
    mappings = dev_template.to_json()["Mappings"]
    [registry] = [m for name, m in mappings.items() if "PyTorchImageRegistries" in name]
    assert registry["us-east-1"]["account"] == "763104351884"
    assert registry["eu-west-1"]["account"] == "763104351884"


def test_no_full_access_managed_policy_anywhere(dev_template):
    text = json.dumps(dev_template.to_json())
    assert "FullAccess" not in text
    dev_template.has_resource_properties(
        "AWS::IAM::Role", Match.object_like({"RoleName": "dogbreeds-dev-sagemaker-execution"})
    )


def test_alerts_topic_is_encrypted_tls_only_and_subscribes_configured_emails():
    context = project_context()
    context["environments"]["staging"]["monitoring"]["alarm_emails"] = ["ops@example.com"]
    _, stacks = build_app("staging", context=context)
    template = Template.from_stack(stacks.storage)
    template.has_resource_properties(
        "AWS::SNS::Topic",
        {"TopicName": "dogbreeds-staging-alerts", "KmsMasterKeyId": Match.any_value()},
    )
    template.has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "ops@example.com"}
    )
    [topic_policy] = template.find_resources("AWS::SNS::TopicPolicy").values()
    statements = topic_policy["Properties"]["PolicyDocument"]["Statement"]
    assert any(s["Effect"] == "Deny" and "aws:SecureTransport" in json.dumps(s) for s in statements)
    publishers = set()
    for s in statements:
        if s["Effect"] == "Allow":
            service = s["Principal"]["Service"]
            publishers.update([service] if isinstance(service, str) else service)
            # Only this account's rules and alarms of this environment (confused-deputy guard).
            assert s["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
            source = json.dumps(s["Condition"]["ArnLike"]["aws:SourceArn"])
            assert ":rule/dogbreeds-staging-*" in source or ":alarm:dogbreeds-staging-*" in source
    assert publishers == {"events.amazonaws.com", "cloudwatch.amazonaws.com"}
    [key] = template.find_resources("AWS::KMS::Key").values()
    key_principals = json.dumps(key["Properties"]["KeyPolicy"]["Statement"])
    assert "events.amazonaws.com" in key_principals


def test_endpoint_role_reads_models_writes_capture_and_nothing_more(dev_template):
    [policy] = dev_template.find_resources(
        "AWS::IAM::Policy", {"Properties": {"PolicyName": "dogbreeds-dev-endpoint-model"}}
    ).values()
    statements = {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    assert statements["ReadModelArtifacts"]["Action"] == "s3:GetObject"
    assert "/pipeline-runs/*" in json.dumps(statements["ReadModelArtifacts"]["Resource"])
    assert statements["WriteDataCapture"]["Action"] == "s3:PutObject"
    assert "/capture/*" in json.dumps(statements["WriteDataCapture"]["Resource"])
    pull = json.dumps(statements["PullInferenceImage"]["Resource"])
    assert "repository/pytorch-inference" in pull and "pytorch-training" not in pull
    actions = {
        action
        for s in statements.values()
        for action in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert not any(a.startswith(("sagemaker:", "iam:")) for a in actions)
    assert not {"s3:DeleteObject", "s3:ListBucket"} & actions
