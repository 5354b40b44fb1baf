"""`dogbreeds models promote` against a moto server: staging's version 1 promoted into prod, in one
account and across two, with each gate passing and failing, and --force.

moto has no DescribeAlarmHistory (it keeps the history but does not serve it): that one call is
answered, through botocore's before-call hook on the clients the command builds, from the state
changes the test makes with SetAlarmState. Everything else goes to the moto server over HTTP.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta

import boto3
import botocore.session
import pytest
from aws_test_env import ACCOUNT, REGION
from cdk_helpers import project_context
from deploy_helpers import IMAGE

from contract import monitoring_metrics as mm
from contract.naming import Names
from contract.promotion_gates import gate_alarm_names
from contract.settings import load_environment
from dogbreeds import promote_aws
from dogbreeds.cli.models import run_promote
from dogbreeds.promotion import PROMOTED_FROM_ARN

SOURCE_ACCOUNT = "111111111111"  # staging, in the cross-account case
STAGING, PROD = Names("dogbreeds", "staging"), Names("dogbreeds", "prod")


class AlarmHistory:
    """DescribeAlarmHistory answers, from the state changes the test records."""

    def __init__(self) -> None:
        self.items: list[dict] = []

    def change(self, cloudwatch, name: str, state: str, at: datetime) -> None:
        previous = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["StateValue"]
        cloudwatch.set_alarm_state(AlarmName=name, StateValue=state, StateReason="test")
        self.items.append({
            "AlarmName": name, "AlarmType": "MetricAlarm", "Timestamp": at, "HistoryItemType": "StateUpdate",
            "HistorySummary": f"Alarm updated from {previous} to {state}",
            "HistoryData": json.dumps(
                {"oldState": {"stateValue": previous}, "newState": {"stateValue": state}}
            ),
        })  # fmt: skip

    def request(self, params, **_):
        self.params = dict(params)  # the API parameters, before serialisation

    def answer(self, **_):
        params = self.params
        items = [
            i for i in self.items
            if i["AlarmName"] == params.get("AlarmName")
            and params["StartDate"] <= i["Timestamp"] <= params["EndDate"]
        ]  # fmt: skip
        return botocore.awsrequest.AWSResponse(None, 200, {}, None), {"AlarmHistoryItems": items}


@pytest.fixture
def history(monkeypatch):
    import botocore.awsrequest  # noqa: F401

    recorded = AlarmHistory()
    create = botocore.session.Session.create_client

    def create_client(self, service_name, *args, **kwargs):
        client = create(self, service_name, *args, **kwargs)
        if service_name == "cloudwatch":
            client.meta.events.register(
                "before-parameter-build.cloudwatch.DescribeAlarmHistory", recorded.request
            )
            client.meta.events.register("before-call.cloudwatch.DescribeAlarmHistory", recorded.answer)
        return client

    monkeypatch.setattr(botocore.session.Session, "create_client", create_client)
    return recorded


def _session(account: str | None):
    if account is None:
        return boto3.session.Session(region_name=REGION)
    credentials = boto3.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/test-setup", RoleSessionName="setup"
    )["Credentials"]
    return boto3.session.Session(
        aws_access_key_id=credentials["AccessKeyId"], aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"], region_name=REGION,
    )  # fmt: skip


def _cdk_json(tmp_path, cross: bool, **promotion):
    context = project_context()
    if cross:
        context["environments"]["staging"].update(account=SOURCE_ACCOUNT, region=REGION)
        context["environments"]["prod"].update(account=ACCOUNT, region=REGION)
    context["environments"]["prod"]["promotion"].update(promotion)
    path = tmp_path / "cdk.json"
    path.write_text(json.dumps({"context": context}))
    return path


class World:
    """staging's version 1 live on its endpoint, with alarms, metrics and objects; prod's group."""

    def __init__(self, history: AlarmHistory, cross: bool, target_group: bool = True) -> None:
        self.history = history
        self.source = _session(SOURCE_ACCOUNT if cross else None)
        self.source_account = SOURCE_ACCOUNT if cross else ACCOUNT
        self.target = _session(None)
        self.bucket = STAGING.bucket(self.source_account, REGION)
        self.target_bucket = PROD.bucket(ACCOUNT, REGION)
        s3, sm, cw = (self.source.client(n) for n in ("s3", "sagemaker", "cloudwatch"))
        self.cloudwatch = cw
        for client, bucket in ((s3, self.bucket), (self.target.client("s3"), self.target_bucket)):
            client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        run = "promoted/dev/v4"
        objects = {
            f"{run}/model-0/model.tar.gz": b"model bytes",
            f"{run}/ModelMetrics.ModelQuality.Statistics/evaluation.json": b'{"accuracy": 0.9}',
            f"{run}/DriftCheckBaselines.ModelQuality.Constraints/constraints.json": b"{}",
            f"{run}/prediction/predictions.json": b"{}",
            f"{run}/prediction/summary.json": b"{}",
        }
        for key, body in objects.items():
            s3.put_object(Bucket=self.bucket, Key=key, Body=body)
        uri = f"s3://{self.bucket}/{run}"
        sm.create_model_package_group(ModelPackageGroupName=STAGING.model_package_group)
        arn = f"arn:aws:sagemaker:{REGION}:{self.source_account}"
        self.source_arn = sm.create_model_package(
            ModelPackageGroupName=STAGING.model_package_group, ModelApprovalStatus="Approved",
            InferenceSpecification={
                "Containers": [{"Image": IMAGE, "ModelDataUrl": f"{uri}/model-0/model.tar.gz",
                                "Environment": {"SAGEMAKER_PROGRAM": "inference.py"}}],
                "SupportedContentTypes": ["image/jpeg"], "SupportedResponseMIMETypes": ["application/json"],
            },
            ModelMetrics={"ModelQuality": {"Statistics": {
                "ContentType": "application/json",
                "S3Uri": f"{uri}/ModelMetrics.ModelQuality.Statistics/evaluation.json"}}},
            DriftCheckBaselines={"ModelQuality": {"Constraints": {
                "ContentType": "application/json",
                "S3Uri": f"{uri}/DriftCheckBaselines.ModelQuality.Constraints/constraints.json"}}},
            CustomerMetadataProperties={
                "PredictionBaselineS3Uri": f"{uri}/prediction/",
                PROMOTED_FROM_ARN: f"{arn}:model-package/dogbreeds-dev-models/4",
                "PromotedFromEnvironment": "dev",
                "TrainingExecutionArn": f"{arn}:pipeline/dogbreeds-dev-training/execution/abc",
                "DatasetS3Uri": "s3://dogbreeds-dev-data/datasets/abc/",
            },
        )["ModelPackageArn"]  # fmt: skip
        role = f"arn:aws:iam::{self.source_account}:role/dogbreeds-staging-endpoint-model"
        sm.create_model(
            ModelName="dogbreeds-staging-model-v1-0123abcd", ExecutionRoleArn=role,
            PrimaryContainer={"Image": IMAGE, "ModelDataUrl": f"{uri}/model-0/model.tar.gz",
                              "Environment": {"DOGBREEDS_MODEL_VERSION": self.source_arn}},
        )  # fmt: skip
        sm.create_endpoint_config(
            EndpointConfigName="dogbreeds-staging-config-v1-0123abcd",
            ProductionVariants=[{"VariantName": "AllTraffic",
                                 "ModelName": "dogbreeds-staging-model-v1-0123abcd",
                                 "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}],
        )  # fmt: skip
        sm.create_endpoint(
            EndpointName=STAGING.endpoint, EndpointConfigName="dogbreeds-staging-config-v1-0123abcd"
        )
        self.live_since = datetime.now(UTC)
        _, staging = load_environment(project_context(), "staging")
        for name in gate_alarm_names(STAGING, staging):
            cw.put_metric_alarm(
                AlarmName=name, MetricName="M", Namespace="N", Statistic="Sum", Period=60,
                EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanThreshold",
            )  # fmt: skip
        if target_group:
            self.target.client("sagemaker").create_model_package_group(
                ModelPackageGroupName=PROD.model_package_group
            )

    def accuracy(self, value: float, labelled: int, hours: int = 20) -> None:
        dimensions = [{"Name": mm.DIMENSION_ENDPOINT, "Value": STAGING.endpoint},
                      {"Name": mm.DIMENSION_MONITOR, "Value": mm.MONITOR_MODEL_QUALITY}]  # fmt: skip
        for hour in range(1, hours + 1):
            at = self.live_since + timedelta(hours=hour)
            self.cloudwatch.put_metric_data(Namespace=STAGING.metric_namespace, MetricData=[
                {"MetricName": mm.ACCURACY, "Dimensions": dimensions, "Timestamp": at, "Value": value},
                {"MetricName": mm.LABELLED_RECORDS, "Dimensions": dimensions, "Timestamp": at,
                 "Value": labelled / hours, "Unit": "Count"},
            ])  # fmt: skip

    def promote(self, tmp_path, capsys, *, cross: bool, hours: float = 25, version: int = 1, **options):
        promotion = options.pop("promotion", {})
        args = argparse.Namespace(
            version=version, source="staging", target="prod", reason=options.get("reason", ""),
            force=options.get("force", False), cdk_json=_cdk_json(tmp_path, cross, **promotion),
            now=self.live_since + timedelta(hours=hours),
        )  # fmt: skip
        code = run_promote(args)
        out = capsys.readouterr()
        return code, out.out, out.err

    def target_versions(self) -> list[dict]:
        sm = self.target.client("sagemaker")
        summaries = sm.list_model_packages(ModelPackageGroupName=PROD.model_package_group)[
            "ModelPackageSummaryList"
        ]
        return [sm.describe_model_package(ModelPackageName=s["ModelPackageArn"]) for s in summaries]


@pytest.fixture(params=["same-account", "cross-account"])
def world(request, aws, history):  # noqa: F811
    without_group = request.node.get_closest_marker("without_target_group") is not None
    cross = request.param == "cross-account"
    return World(history, cross, target_group=not without_group), cross


def test_every_gate_passes_and_the_same_model_arrives_pending(world, tmp_path, capsys):
    w, cross = world
    w.accuracy(0.9, 400)
    code, out, err = w.promote(tmp_path, capsys, cross=cross)
    assert code == 0, out + err
    for gate in ("live", "live_for", "alarms", "live_accuracy"):
        assert f"pass  {gate}" in out, out
    assert "accuracy 0.900 on 400 labelled records" in out
    [package] = w.target_versions()
    assert package["ModelApprovalStatus"] == "PendingManualApproval"  # prod: approve false
    [container] = package["InferenceSpecification"]["Containers"]
    prefix = f"s3://{w.target_bucket}/promoted/staging/v1"
    assert container["ModelDataUrl"] == f"{prefix}/model-0/model.tar.gz"
    assert container["Image"] == IMAGE and container["Environment"] == {"SAGEMAKER_PROGRAM": "inference.py"}
    assert package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"].startswith(prefix)
    assert package["DriftCheckBaselines"]["ModelQuality"]["Constraints"]["S3Uri"].startswith(prefix)
    metadata = package["CustomerMetadataProperties"]
    assert (
        metadata["PredictionBaselineS3Uri"] == f"{prefix}/CustomerMetadataProperties.PredictionBaselineS3Uri/"
    )
    assert metadata[PROMOTED_FROM_ARN] == w.source_arn
    assert metadata["PromotedFromEnvironment"] == "staging"
    assert metadata["TrainingExecutionArn"].endswith("execution/abc")  # carried from dev's lineage
    assert metadata["DatasetS3Uri"] == "s3://dogbreeds-dev-data/datasets/abc/"
    assert metadata["PromotedBy"].startswith("arn:aws:") and metadata["PromotionGates"] == "passed"
    # The copies are the target's objects, byte for byte.
    s3 = w.target.client("s3")
    body = s3.get_object(Bucket=w.target_bucket, Key="promoted/staging/v1/model-0/model.tar.gz")[
        "Body"
    ].read()
    assert body == b"model bytes"
    listed = s3.list_objects_v2(
        Bucket=w.target_bucket, Prefix="promoted/staging/v1/CustomerMetadataProperties"
    )
    assert sorted(o["Key"].rsplit("/", 1)[-1] for o in listed["Contents"]) == [
        "predictions.json",
        "summary.json",
    ]
    gates = json.loads(
        s3.get_object(Bucket=w.target_bucket, Key="promoted/staging/v1/gates.json")["Body"].read()
    )
    assert gates["passed"] and not gates["forced"] and gates["source_package_arn"] == w.source_arn
    assert {g["name"] for g in gates["gates"]} == {"live", "live_for", "alarms", "live_accuracy"}
    if cross:
        assert "dogbreeds-staging-evidence-for-prod" in out
    # `models show` in prod tells where the version came from.
    from dogbreeds.cli import main

    assert main(["models", "show", "--env", "prod", "1", "--cdk-json", str(tmp_path / "cdk.json")]) == 0
    shown = capsys.readouterr().out
    assert f"promoted from staging: {w.source_arn}" in shown and "gates passed" in shown
    assert "dataset: s3://dogbreeds-dev-data/datasets/abc/" in shown


def test_promoting_again_changes_nothing(world, tmp_path, capsys):
    w, cross = world
    w.accuracy(0.9, 400)
    assert w.promote(tmp_path, capsys, cross=cross)[0] == 0
    code, out, _ = w.promote(tmp_path, capsys, cross=cross)
    assert code == 0 and "already promoted: dogbreeds-prod-models version 1" in out
    assert len(w.target_versions()) == 1


def test_approve_setting_registers_it_approved(world, tmp_path, capsys):
    w, cross = world
    w.accuracy(0.9, 400)
    code, out, _ = w.promote(tmp_path, capsys, cross=cross, promotion={"approve": True})
    assert code == 0 and "registered dogbreeds-prod-models version 1: Approved" in out
    assert w.target_versions()[0]["ModelApprovalStatus"] == "Approved"


def test_not_live_long_enough_is_refused(world, tmp_path, capsys):
    w, cross = world
    w.accuracy(0.9, 400, hours=2)
    code, out, err = w.promote(tmp_path, capsys, cross=cross, hours=3)
    assert code == 1
    assert "FAIL  live_for" in out and "3.0 h, at least 24 h required" in out
    assert "refused: failed live_for" in err
    assert w.target_versions() == []


def test_a_version_not_live_is_refused(world, tmp_path, capsys):
    w, cross = world
    w.source.client("sagemaker").create_model_package(
        ModelPackageGroupName=STAGING.model_package_group, ModelApprovalStatus="Approved",
        InferenceSpecification={"Containers": [{"Image": IMAGE}], "SupportedContentTypes": ["image/jpeg"],
                                "SupportedResponseMIMETypes": ["application/json"]},
    )  # fmt: skip
    w.accuracy(0.9, 400)
    code, out, _ = w.promote(tmp_path, capsys, cross=cross, version=2)
    assert code == 1 and "FAIL  live " in out and "serves version 1, not version 2" in out


def test_an_alarm_while_live_is_refused_even_when_it_recovered(world, tmp_path, capsys):
    w, cross = world
    w.accuracy(0.9, 400)
    w.history.change(w.cloudwatch, STAGING.endpoint_5xx_alarm, "ALARM", w.live_since + timedelta(hours=5))
    w.history.change(w.cloudwatch, STAGING.endpoint_5xx_alarm, "OK", w.live_since + timedelta(hours=6))
    code, out, _ = w.promote(tmp_path, capsys, cross=cross)
    assert code == 1 and "FAIL  alarms" in out
    assert f"{STAGING.endpoint_5xx_alarm} went to ALARM at" in out


def test_an_alarm_before_the_version_went_live_does_not_count(world, tmp_path, capsys):
    w, cross = world
    w.accuracy(0.9, 400)
    w.history.change(w.cloudwatch, STAGING.endpoint_5xx_alarm, "ALARM", w.live_since - timedelta(hours=5))
    w.history.change(w.cloudwatch, STAGING.endpoint_5xx_alarm, "OK", w.live_since - timedelta(hours=4))
    assert w.promote(tmp_path, capsys, cross=cross)[0] == 0


def test_low_live_accuracy_is_refused(world, tmp_path, capsys):
    w, cross = world
    w.accuracy(0.7, 400)  # prod's monitoring.accuracy_threshold is 0.8
    code, out, _ = w.promote(tmp_path, capsys, cross=cross)
    assert code == 1 and "FAIL  live_accuracy" in out and "accuracy 0.700" in out and "threshold 0.8" in out


def test_too_few_labels_fail_only_where_labels_are_required(world, tmp_path, capsys):
    w, cross = world
    w.accuracy(0.5, 20)
    code, out, _ = w.promote(tmp_path, capsys, cross=cross)  # prod: require_labels true
    assert code == 1 and "20 labelled records" in out and "required (require_labels)" in out
    code, out, _ = w.promote(tmp_path, capsys, cross=cross, promotion={"require_labels": False})
    assert code == 0 and "not judged" in out


def test_force_overrides_and_is_recorded(world, tmp_path, capsys):
    w, cross = world
    w.accuracy(0.7, 400)
    code, _, err = w.promote(tmp_path, capsys, cross=cross, force=True)
    assert code == 2 and "--force needs --reason" in err
    code, out, _ = w.promote(
        tmp_path,
        capsys,
        cross=cross,
        force=True,
        reason="hotfix: known label noise",
        promotion={"approve": True},
    )
    assert code == 0, out
    [package] = w.target_versions()
    # A forced promotion never approves itself, whatever the settings.
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    metadata = package["CustomerMetadataProperties"]
    assert metadata["PromotionGates"] == "forced past live_accuracy"
    assert metadata["PromotionReason"] == "hotfix: known label noise"
    gates = json.loads(
        w.target.client("s3")
        .get_object(Bucket=w.target_bucket, Key="promoted/staging/v1/gates.json")["Body"]
        .read()
    )
    assert gates["forced"] and gates["reason"] == "hotfix: known label noise" and not gates["passed"]


def test_unknown_source_version_is_named(world, tmp_path, capsys):
    w, cross = world
    code, _, err = w.promote(tmp_path, capsys, cross=cross, version=9)
    assert code == 2 and "version 9 is not in dogbreeds-staging-models; registered versions: 1" in err


@pytest.mark.without_target_group
def test_a_missing_target_group_means_the_stack_is_not_deployed(world, tmp_path, capsys):
    w, cross = world
    code, _, err = w.promote(tmp_path, capsys, cross=cross)
    assert code == 2 and "dogbreeds-prod-models does not exist: deploy prod's stacks first" in err


def test_the_pair_must_be_the_configured_one(aws):  # noqa: F811
    from dogbreeds.environment import CommandError

    with pytest.raises(CommandError, match="prod promotes from staging, not dev"):
        promote_aws.promote(version=1, source_env="dev", target_env="prod", reason="", force=False)


def test_credentials_of_another_account_than_the_targets_are_refused(aws, tmp_path, capsys):  # noqa: F811
    context = project_context()
    context["environments"]["staging"].update(account=SOURCE_ACCOUNT, region=REGION)
    context["environments"]["prod"].update(account="444455556666", region=REGION)
    path = tmp_path / "cdk.json"
    path.write_text(json.dumps({"context": context}))
    args = argparse.Namespace(
        version=1, source="staging", target="prod", reason="", force=False, cdk_json=path, now=None
    )
    assert run_promote(args) == 2
    err = capsys.readouterr().err
    assert f"the credentials are for account {ACCOUNT}, but prod is pinned to account 444455556666" in err
