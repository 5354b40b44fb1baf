"""Promotion's grants, evaluated with @cloud-copilot/iam-simulate over the synthesised, resolved
templates of a source (staging) and a target (prod): in one account, and in two.

Every request promotion makes (dogbreeds/promote_aws.py) is allowed for the target's promotion
role; the same requests by another principal of the target account (with an allow-everything
identity policy, so only the source's resource policies decide), by a principal of a third
account, or on another prefix, key or alarm are denied; the evidence role is read-only; the
promotion role registers PendingManualApproval only where the target does not approve.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from cdk_helpers import build_app, project_context
from iam_access.accesses import Request
from iam_access.evaluator import evaluate, node_available
from iam_access.policies import PolicyStore

from contract.naming import MonitoringAlarmNames, Names
from dogbreeds.cloud_assembly import CloudAssembly

pytestmark = pytest.mark.skipif(
    not node_available() and not os.environ.get("CI"),
    reason="needs node and the npm devDependencies (make setup runs npm ci)",
)

REGION = "eu-west-1"
STAGING_ACCOUNT, PROD_ACCOUNT, OTHER_ACCOUNT = "222233334444", "333344445555", "999988887777"
STAGING, PROD = Names("dogbreeds", "staging"), Names("dogbreeds", "prod")
ADMIN = "admin-allows-everything"


def _assembly(env: str, context: dict, account: str, outdir) -> CloudAssembly:
    app, _ = build_app(env, context=context, outdir=str(outdir))
    app.synth()
    return CloudAssembly.load(outdir, account=account, region=REGION)


def _store(*assemblies: CloudAssembly) -> PolicyStore:
    store = PolicyStore()
    for assembly in assemblies:
        part = PolicyStore.from_assembly(assembly)
        store.documents.update(part.documents)
        store.identity.update(part.identity)
        store.resource.update(part.resource)
        store.buckets.update(part.buckets)
        store.roles.update(part.roles)
    store.add_document(
        ADMIN, {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    )
    return store


class Probe:
    def __init__(self, store: PolicyStore, staging: CloudAssembly, prod: CloudAssembly) -> None:
        self.store = store
        self.staging, self.prod = staging, prod
        self.staging_bucket = STAGING.bucket(staging.account, REGION)
        self.prod_bucket = PROD.bucket(prod.account, REGION)
        [self.staging_key] = [staging.get_att(k, "Arn") for k in staging.resources("AWS::KMS::Key")]
        [self.prod_key] = [prod.get_att(k, "Arn") for k in prod.resources("AWS::KMS::Key")]

    def role(self, account: str, name: str, admin: bool = False) -> tuple[str, str]:
        arn = f"arn:aws:iam::{account}:role/{name}"
        if admin:
            self.store.identity[arn] = [ADMIN]
        return arn, f"arn:aws:sts::{account}:assumed-role/{name}/probe"

    def request(
        self, who: tuple[str, str], action: str, resource: str, account: str, **context: Any
    ) -> Request:
        role_arn, principal = who
        values = {"aws:SecureTransport": "true", "aws:PrincipalArn": role_arn, **context}
        items = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in values.items()))
        return Request(
            principal,
            action,
            resource,
            account,
            items,
            role_arn,
            self.store.resource_policy(resource),
            "probe",
        )


def _cases(p: Probe, cross: bool) -> dict[str, tuple[Request, bool]]:
    s_acct, t_acct = p.staging.account, p.prod.account
    promoter = p.role(t_acct, PROD.promotion_role)
    other_in_target = p.role(t_acct, "someone-else", admin=True)
    third = p.role(OTHER_ACCOUNT, "intruder", admin=True)
    model = f"arn:aws:s3:::{p.staging_bucket}/promoted/dev/v4/model-0/model.tar.gz"
    s3_kms = {"kms:ViaService": f"s3.{REGION}.amazonaws.com", "kms:ResourceAliases": [STAGING.kms_alias]}
    package = f"arn:aws:sagemaker:{REGION}:{s_acct}:model-package/{STAGING.model_package_group}/1"
    alarm = f"arn:aws:cloudwatch:{REGION}:{s_acct}:alarm:{STAGING.endpoint_5xx_alarm}"
    drift = f"arn:aws:cloudwatch:{REGION}:{s_acct}:alarm:{MonitoringAlarmNames(STAGING).feature_drift}"
    target_package = f"arn:aws:sagemaker:{REGION}:{t_acct}:model-package/{PROD.model_package_group}/1"
    r = p.request
    source_object = f"arn:aws:s3:::{p.staging_bucket}/"
    source_bucket = f"arn:aws:s3:::{p.staging_bucket}"
    target_object = f"arn:aws:s3:::{p.prod_bucket}/"
    via_s3 = {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}
    pending = {"sagemaker:ModelApprovalStatus": "PendingManualApproval"}
    approved = {"sagemaker:ModelApprovalStatus": "Approved"}
    cases = {
        # Copying: read the source's model prefixes, decrypt through S3, write the target's promoted/.
        "promoter reads a model object": (r(promoter, "s3:GetObject", model, s_acct), True),
        "promoter reads a trained run": (
            r(promoter, "s3:GetObject", source_object + "pipeline-runs/x/model.tar.gz", s_acct),
            True,
        ),
        "promoter reads capture": (r(promoter, "s3:GetObject", source_object + "capture/x", s_acct), False),
        "promoter lists promoted/": (
            r(promoter, "s3:ListBucket", source_bucket, s_acct, **{"s3:prefix": "promoted/dev/v4/"}),
            True,
        ),
        "promoter lists capture/": (
            r(promoter, "s3:ListBucket", source_bucket, s_acct, **{"s3:prefix": "capture/"}),
            False,
        ),
        "promoter decrypts through S3": (r(promoter, "kms:Decrypt", p.staging_key, s_acct, **s3_kms), True),
        "promoter decrypts directly": (
            r(promoter, "kms:Decrypt", p.staging_key, s_acct, **{"kms:ResourceAliases": [STAGING.kms_alias]}),
            False,
        ),
        "promoter writes promoted/": (
            r(promoter, "s3:PutObject", target_object + "promoted/staging/v1/gates.json", t_acct),
            True,
        ),
        "promoter writes pipeline-runs/": (
            r(promoter, "s3:PutObject", target_object + "pipeline-runs/x", t_acct),
            False,
        ),
        "promoter encrypts with the target key": (
            r(promoter, "kms:GenerateDataKey", p.prod_key, t_acct, **via_s3),
            True,
        ),
        # Registering: PendingManualApproval only (prod's promotion.approve is false).
        "promoter registers pending": (
            r(promoter, "sagemaker:CreateModelPackage", target_package, t_acct, **pending),
            True,
        ),
        "promoter registers approved": (
            r(promoter, "sagemaker:CreateModelPackage", target_package, t_acct, **approved),
            False,
        ),
        # Anyone else: the source's resource policies do not admit them.
        "another target principal reads a model object": (
            r(other_in_target, "s3:GetObject", model, s_acct),
            not cross,
        ),
        "another target principal decrypts": (
            r(other_in_target, "kms:Decrypt", p.staging_key, s_acct, **s3_kms),
            not cross,
        ),
        "a third account reads a model object": (r(third, "s3:GetObject", model, s_acct), False),
        "a third account decrypts": (r(third, "kms:Decrypt", p.staging_key, s_acct, **s3_kms), False),
    }
    other_alarm = alarm.replace("5xx-errors", "x")
    endpoint = f"arn:aws:sagemaker:{REGION}:{s_acct}:endpoint/{STAGING.endpoint}"
    if cross:
        evidence_arn = f"arn:aws:iam::{s_acct}:role/{STAGING.promotion_evidence_role('prod')}"
        evidence = p.role(s_acct, STAGING.promotion_evidence_role("prod"))
        dev_package = package.replace("staging-models", "dev-models")
        cases.update(
            {
                "promoter assumes the evidence role": (
                    r(promoter, "sts:AssumeRole", evidence_arn, s_acct),
                    True,
                ),
                "another target principal assumes it": (
                    r(other_in_target, "sts:AssumeRole", evidence_arn, s_acct),
                    False,
                ),
                "a third account assumes it": (r(third, "sts:AssumeRole", evidence_arn, s_acct), False),
                "evidence reads the version": (
                    r(evidence, "sagemaker:DescribeModelPackage", package, s_acct),
                    True,
                ),
                "evidence reads a dev version": (
                    r(evidence, "sagemaker:DescribeModelPackage", dev_package, s_acct),
                    False,
                ),
                "evidence reads alarm history": (
                    r(evidence, "cloudwatch:DescribeAlarmHistory", alarm, s_acct),
                    True,
                ),
                "evidence reads a monitoring alarm": (
                    r(evidence, "cloudwatch:DescribeAlarms", drift, s_acct),
                    True,
                ),
                "evidence reads another alarm": (
                    r(evidence, "cloudwatch:DescribeAlarmHistory", other_alarm, s_acct),
                    False,
                ),
                "evidence reads the endpoint": (
                    r(evidence, "sagemaker:DescribeEndpoint", endpoint, s_acct),
                    True,
                ),
                "evidence reads metrics": (r(evidence, "cloudwatch:GetMetricStatistics", "*", s_acct), True),
                "evidence cannot approve": (
                    r(evidence, "sagemaker:UpdateModelPackage", package, s_acct),
                    False,
                ),
                "evidence cannot read capture": (
                    r(evidence, "s3:GetObject", source_object + "capture/x", s_acct),
                    False,
                ),
                "promoter does not read the registry directly": (
                    r(promoter, "sagemaker:DescribeModelPackage", package, s_acct),
                    False,
                ),
            }
        )
    else:
        cases.update(
            {
                "promoter reads the version": (
                    r(promoter, "sagemaker:DescribeModelPackage", package, s_acct),
                    True,
                ),
                "promoter reads alarm history": (
                    r(promoter, "cloudwatch:DescribeAlarmHistory", alarm, s_acct),
                    True,
                ),
                "promoter reads another alarm": (
                    r(promoter, "cloudwatch:DescribeAlarmHistory", other_alarm, s_acct),
                    False,
                ),
                "promoter reads the endpoint": (
                    r(promoter, "sagemaker:DescribeEndpoint", endpoint, s_acct),
                    True,
                ),
                "promoter cannot approve in the source": (
                    r(promoter, "sagemaker:UpdateModelPackage", package, s_acct),
                    False,
                ),
            }
        )
    return cases


@pytest.fixture(scope="module", params=["same-account", "cross-account"])
def judged(request, tmp_path_factory):
    cross = request.param == "cross-account"
    context = project_context()
    accounts = {"staging": STAGING_ACCOUNT, "prod": PROD_ACCOUNT if cross else STAGING_ACCOUNT}
    if cross:
        for env, account in accounts.items():
            context["environments"][env].update(account=account, region=REGION)
        context["environments"]["dev"].update(account="111122223333", region=REGION)
    staging = _assembly("staging", context, accounts["staging"], tmp_path_factory.mktemp("staging"))
    prod = _assembly("prod", context, accounts["prod"], tmp_path_factory.mktemp("prod"))
    store = _store(staging, prod)
    probe = Probe(store, staging, prod)
    cases = _cases(probe, cross)
    [outcomes], _ = evaluate([([req for req, _ in cases.values()], store)])
    return {
        name: (outcome, allowed)
        for (name, (_, allowed)), outcome in zip(cases.items(), outcomes, strict=True)
    }


def test_promotion_grants_allow_exactly_what_promotion_does(judged):
    wrong = [
        f"{name}: expected {'allowed' if allowed else 'denied'}\n{outcome.report()}"
        for name, (outcome, allowed) in judged.items()
        if outcome.allowed != allowed
    ]
    assert len(judged) >= 20
    assert not wrong, "\n".join(wrong)


def test_no_evaluation_errors(judged):
    assert not [o.report() for o, _ in judged.values() if o.result == "Error"]
