"""The stacks of promotion: receive-only environments (no training, no retraining), the target's
promotion role, and in a source in another account, the grants that role needs there and nothing
for anyone else. (Whether the grants allow and deny the right requests: tests/stacks/test_iam_access.py.)"""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match, Template
from cdk_helpers import build_app, project_context
from repo_paths import REPO_ROOT

from contract.naming import MonitoringAlarmNames, Names
from contract.promotion_gates import gate_alarm_names

ACCOUNTS = {"dev": "111122223333", "staging": "222233334444", "prod": "333344445555"}


def cross_account_context() -> dict:
    context = project_context()
    for env, account in ACCOUNTS.items():
        context["environments"][env].update(account=account, region="eu-west-1")
    return context


@pytest.fixture(scope="module")
def prod():
    _, stacks = build_app("prod")
    return stacks


@pytest.fixture(scope="module")
def staging_cross():
    _, stacks = build_app("staging", context=cross_account_context())
    return stacks


def _statements(template: Template, policy_name: str) -> dict:
    [policy] = template.find_resources(
        "AWS::IAM::Policy", {"Properties": {"PolicyName": policy_name}}
    ).values()
    return {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}


def test_receive_only_environment_has_no_training_and_no_retraining(prod):
    assert prod.training is None
    storage = Template.from_stack(prod.storage)
    storage.has_resource_properties(
        "AWS::SageMaker::ModelPackageGroup", {"ModelPackageGroupName": "dogbreeds-prod-models"}
    )
    monitoring = Template.from_stack(prod.monitoring)
    monitoring.resource_count_is("AWS::Lambda::Function", 0)  # no retrain guard
    monitoring.resource_count_is("AWS::Events::Rule", 1)  # the failed-monitoring alert only
    assert len(monitoring.find_resources("AWS::CloudWatch::Alarm")) == len(
        MonitoringAlarmNames(prod.names).all
    )
    deployment = Template.from_stack(prod.deployment)
    deployment.has_resource_properties(
        "AWS::Events::Rule",
        {"EventPattern": Match.object_like({"detail": Match.object_like(
            {"ModelPackageGroupName": ["dogbreeds-prod-models"]})})},
    )  # fmt: skip


def test_training_environment_keeps_its_retrain_guard():
    _, dev = build_app("dev")
    assert dev.training is not None
    Template.from_stack(dev.monitoring).resource_count_is("AWS::Lambda::Function", 1)


def test_monitoring_alarm_names_are_the_alarms_the_stack_makes(prod):
    made = {
        a["Properties"]["AlarmName"]
        for a in Template.from_stack(prod.monitoring).find_resources("AWS::CloudWatch::Alarm").values()
    }
    assert made == set(MonitoringAlarmNames(prod.names).all)
    deploy = {
        a["Properties"]["AlarmName"]
        for a in Template.from_stack(prod.deployment).find_resources("AWS::CloudWatch::Alarm").values()
    }
    assert set(prod.names.rollback_alarms) <= deploy


def test_same_account_promotion_role_reads_source_directly_and_registers_pending_only(prod):
    storage = Template.from_stack(prod.storage)
    statements = _statements(storage, "dogbreeds-prod-promotion")
    register = statements["RegisterPromotedVersion"]
    assert register["Action"] == "sagemaker:CreateModelPackage"
    # prod's promotion.approve is false: the role cannot register an Approved version.
    assert register["Condition"] == {
        "StringEquals": {"sagemaker:ModelApprovalStatus": ["PendingManualApproval"]}
    }
    assert "AssumeSourceEvidenceRole" not in statements
    alarms = json.dumps(statements["ReadGateAlarms"]["Resource"])
    for name in gate_alarm_names(Names("dogbreeds", "staging"), prod.peers.source[1]):
        assert f"alarm:{name}" in alarms
    assert "dogbreeds-prod" not in alarms
    reads = json.dumps(statements["ReadSourceModelObjects"]["Resource"])
    assert "dogbreeds-staging-data-" in reads and "/pipeline-runs/*" in reads and "/promoted/*" in reads
    assert "/capture/" not in reads
    # Same account: no resource-policy grants and no evidence role anywhere.
    storage.resource_count_is("AWS::IAM::Role", 3)  # execution, endpoint, promotion
    bucket_policies = json.dumps(storage.find_resources("AWS::S3::BucketPolicy"))
    assert "Promotion" not in bucket_policies


def test_staging_approves_promotions_itself():
    _, staging = build_app("staging")
    statements = _statements(Template.from_stack(staging.storage), "dogbreeds-staging-promotion")
    assert statements["RegisterPromotedVersion"]["Condition"]["StringEquals"][
        "sagemaker:ModelApprovalStatus"
    ] == ["PendingManualApproval", "Approved"]


def test_cross_account_source_grants_only_the_targets_promotion_role(staging_cross):
    storage = Template.from_stack(staging_cross.storage)
    promoter = "role/dogbreeds-prod-promotion"
    policies = storage.find_resources("AWS::S3::BucketPolicy")
    grants = [
        s
        for p in policies.values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if s.get("Sid", "").startswith("PromotionToProd")
    ]
    assert {s["Action"] for s in grants} == {"s3:GetObject", "s3:ListBucket"}
    for grant in grants:
        assert grant["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNTS['prod']}:root"}
        assert promoter in json.dumps(grant["Condition"]["ArnEquals"]["aws:PrincipalArn"])
    [key] = storage.find_resources("AWS::KMS::Key").values()
    [decrypt] = [
        s for s in key["Properties"]["KeyPolicy"]["Statement"] if s.get("Sid", "").startswith("PromotionTo")
    ]
    assert decrypt["Action"] == "kms:Decrypt" and "kms:ViaService" in decrypt["Condition"]["StringEquals"]
    [evidence] = storage.find_resources(
        "AWS::IAM::Role", {"Properties": {"RoleName": "dogbreeds-staging-evidence-for-prod"}}
    ).values()
    [trust] = evidence["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNTS['prod']}:root"}
    assert promoter in json.dumps(trust["Condition"])
    actions = set()
    for statement in _statements(storage, "dogbreeds-staging-evidence-for-prod").values():
        actions |= set([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    # Read-only: nothing that writes or changes.
    assert all(a.split(":")[1].startswith(("Describe", "List", "Get")) for a in actions), actions
    # staging's own promotion (from dev, another account) assumes dev's evidence role.
    own = _statements(storage, "dogbreeds-staging-promotion")
    assert "dogbreeds-dev-evidence-for-staging" in json.dumps(own["AssumeSourceEvidenceRole"]["Resource"])
    assert "ReadGateAlarms" not in own


def test_cross_account_stacks_pass_cdk_nag_and_cfn_lint(tmp_path):
    """Every environment of the cross-account chain synthesises with no unacknowledged cdk-nag
    finding, and cfn-lint finds nothing in its templates."""
    import subprocess
    import sys
    from pathlib import Path


    templates = []
    for env in ACCOUNTS:
        outdir = tmp_path / env
        app, _ = build_app(env, context=cross_account_context(), outdir=str(outdir))
        app.synth()  # raises ValidationFailed listing any unacknowledged finding
        templates += sorted(str(p) for p in outdir.glob("*.template.json"))
    lint = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), "--format", "parseable", *templates],
        cwd=REPO_ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_the_cli_refuses_a_pair_that_is_not_configured():
    import os
    import subprocess
    import sys


    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    result = subprocess.run(
        [sys.executable, "-m", "dogbreeds", "models", "promote", "1", "--from", "dev", "--to", "prod"],
        cwd=REPO_ROOT, env={**env, "PYTHONPATH": str(REPO_ROOT)}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert "prod promotes from staging, not dev" in result.stderr
