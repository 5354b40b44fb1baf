"""`dogbreeds models list|show|approve|reject` as a real subprocess against a moto server, and its errors
without credentials or with bad input."""

from __future__ import annotations

import os
import subprocess
import sys

import boto3
import pytest
from aws_test_env import REGION, aws_environment
from deploy_helpers import (
    BUCKET,
    IMAGE,
    ROLE_ARN,
    environment,
    package_event,
    register_versions,
)
from repo_paths import REPO_ROOT

GROUP = "dogbreeds-dev-models"


def dogbreeds(*args: str, aws_url: str | None = None, extra_env: dict[str, str] | None = None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS="1")
    if aws_url:
        env.update(aws_environment(aws_url))
    env.update(extra_env or {})
    return subprocess.run(
        [sys.executable, "-m", "dogbreeds", "models", *args],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )


@pytest.fixture
def registry(aws):  # noqa: F811
    sagemaker = boto3.client("sagemaker")
    arns = register_versions(sagemaker, GROUP, 3)
    return aws, sagemaker, arns


def _status(sagemaker, arn: str) -> str:
    return sagemaker.describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"]


def test_approve_and_reject_change_the_registry(registry):
    url, sagemaker, arns = registry
    approved = dogbreeds("approve", "--env", "dev", "2", "--description", "looks good", aws_url=url)
    assert approved.returncode == 0, approved.stderr
    assert "Version 2 of dogbreeds-dev-models is now Approved" in approved.stdout
    assert _status(sagemaker, arns[1]) == "Approved"
    assert _status(sagemaker, arns[0]) == "PendingManualApproval"

    rejected = dogbreeds("reject", "--env", "dev", "2", aws_url=url)
    assert rejected.returncode == 0, rejected.stderr
    assert _status(sagemaker, arns[1]) == "Rejected"


def test_list_shows_statuses_and_the_version_the_lambda_made_live(registry, monkeypatch, deploy_handler):
    url, sagemaker, arns = registry
    sagemaker.update_model_package(ModelPackageArn=arns[2], ModelApprovalStatus="Approved")
    # Deploy v3 with the real handler, so the CLI reads the Lambda's config name back.
    _, env = environment("dev")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    handler = deploy_handler
    assert handler.handler(package_event(GROUP, arns[2], 3, "Approved"), None)["action"] == "created"

    listed = dogbreeds("list", "--env", "dev", aws_url=url)
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()[1:] if line.strip()}
    assert "PendingManualApproval" in rows["1"] and "live" not in rows["1"]
    assert "Approved" in rows["3"] and "live on dogbreeds-dev-endpoint" in rows["3"]


def test_list_before_any_deployment_says_nothing_is_live(registry):
    url, _, _ = registry
    listed = dogbreeds("list", "--env", "dev", aws_url=url)
    assert listed.returncode == 0, listed.stderr
    assert "No version is live: dogbreeds-dev-endpoint does not exist yet" in listed.stdout


def test_unknown_version_names_the_registered_ones(registry):
    url, sagemaker, arns = registry
    result = dogbreeds("approve", "--env", "dev", "9", aws_url=url)
    assert result.returncode == 2
    assert "version 9 is not in dogbreeds-dev-models; registered versions: 1, 2, 3" in result.stderr
    assert all(_status(sagemaker, arn) == "PendingManualApproval" for arn in arns)


def test_without_credentials_it_says_how_to_provide_them():
    result = dogbreeds(
        "list", "--env", "dev",
        extra_env={
            "AWS_DEFAULT_REGION": "eu-west-1",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials",
            "AWS_CONFIG_FILE": "/nonexistent/config",
            "AWS_EC2_METADATA_DISABLED": "true",
        },
    )
    assert result.returncode == 2
    assert "no AWS credentials: set AWS_PROFILE" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_environment_lists_the_defined_ones():
    result = dogbreeds("list", "--env", "qa")
    assert result.returncode == 2
    assert "Unknown environment 'qa'" in result.stderr and "dev, prod, staging" in result.stderr


# -- the evidence: metrics from evaluation.json in S3, threshold, live version, source, approval --------
EVALUATIONS = {1: (0.75, 0.95, 0.7), 2: (0.8125, 0.9875, 0.8)}  # version 3 has no evaluation.json


@pytest.fixture
def evidence(aws):  # noqa: F811
    """Three versions registered by one pipeline execution (AccuracyThreshold 0.6) with ModelMetrics
    naming evaluation.json objects in a moto bucket; v1 approved and live on an endpoint whose model
    names its package in DOGBREEDS_MODEL_VERSION (under a config name the Lambda did not make)."""
    import json

    sagemaker, s3 = boto3.client("sagemaker"), boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    sagemaker.create_pipeline(
        PipelineName="dogbreeds-dev-training", RoleArn=ROLE_ARN,
        PipelineDefinition=json.dumps({"Version": "2020-12-01", "Parameters": [], "Steps": []}),
    )
    execution = sagemaker.start_pipeline_execution(
        PipelineName="dogbreeds-dev-training",
        PipelineParameters=[
            {"Name": "AccuracyThreshold", "Value": "0.6"},
            {"Name": "DatasetS3Uri", "Value": f"s3://{BUCKET}/datasets/abc123/"},
        ],
    )["PipelineExecutionArn"]
    sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
    arns = []
    for version in (1, 2, 3):
        run = f"s3://{BUCKET}/pipeline-runs/run{version}"
        if version in EVALUATIONS:
            accuracy, top5, f1 = EVALUATIONS[version]
            metrics = {"accuracy": {"value": accuracy}, "top_5_accuracy": {"value": top5},
                       "macro_f1": {"value": f1}}  # fmt: skip
            s3.put_object(
                Bucket=BUCKET, Key=f"pipeline-runs/run{version}/evaluation/evaluation.json",
                Body=json.dumps({"multiclass_classification_metrics": metrics}).encode(),
            )
        arns.append(sagemaker.create_model_package(
            ModelPackageGroupName=GROUP,
            ModelApprovalStatus="PendingManualApproval",
            InferenceSpecification={
                "Containers": [{"Image": IMAGE, "ModelDataUrl": f"{run}/model.tar.gz"}],
                "SupportedContentTypes": ["image/jpeg"], "SupportedResponseMIMETypes": ["application/json"],
            },
            ModelMetrics={"ModelQuality": {"Statistics": {
                "ContentType": "application/json", "S3Uri": f"{run}/evaluation/evaluation.json"}}},
            DriftCheckBaselines={"ModelQuality": {"Constraints": {
                "ContentType": "application/json", "S3Uri": f"{run}/quality/constraints.json"}}},
            MetadataProperties={"GeneratedBy": execution},
        )["ModelPackageArn"])  # fmt: skip
    sagemaker.update_model_package(
        ModelPackageArn=arns[0], ModelApprovalStatus="Approved", ApprovalDescription="beats the baseline"
    )
    sagemaker.create_model(
        ModelName="hand-made-model", ExecutionRoleArn=ROLE_ARN,
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": f"s3://{BUCKET}/pipeline-runs/run1/model.tar.gz",
                          "Environment": {"DOGBREEDS_MODEL_VERSION": arns[0]}},
    )  # fmt: skip
    sagemaker.create_endpoint_config(
        EndpointConfigName="hand-made-config",
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": "hand-made-model",
                             "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}],
    )  # fmt: skip
    sagemaker.create_endpoint(EndpointName="dogbreeds-dev-endpoint", EndpointConfigName="hand-made-config")
    return aws, execution


def test_list_shows_metrics_threshold_and_live_from_the_model_environment(evidence):
    url, _ = evidence
    listed = dogbreeds("list", "--env", "dev", aws_url=url)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["VERSION", "STATUS", "CREATED", "ACCURACY", "TOP5", "F1", "THRESHOLD", "LIVE"]
    rows = {line.split()[0]: line.split() for line in lines[1:] if line.strip()}
    assert rows["1"][1] == "Approved" and rows["1"][4:] == [
        "0.7500", "0.9500", "0.7000", "0.6", "live", "on", "dogbreeds-dev-endpoint"
    ]
    assert rows["2"][4:] == ["0.8125", "0.9875", "0.8000", "0.6", "newer", "than", "live"]
    assert rows["3"][4:] == ["n/a", "n/a", "n/a", "0.6", "newer", "than", "live"]


def test_show_compares_with_live_and_names_baselines_execution_dataset_approval(evidence):
    url, execution = evidence
    shown = dogbreeds("show", "--env", "dev", "2", aws_url=url)
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "dogbreeds-dev-models version 2: PendingManualApproval" in out
    assert "live: version 1 on dogbreeds-dev-endpoint" in out
    assert "accuracy         0.8125  (live v1: 0.7500, +0.0625)" in out
    assert "top_5_accuracy   0.9875  (live v1: 0.9500, +0.0375)" in out
    assert "macro_f1         0.8000  (live v1: 0.7000, +0.1000)" in out
    assert "threshold passed 0.6" in out
    assert out.split("baselines:")[1].splitlines()[1].split() == [
        "ModelQuality.Constraints", f"s3://{BUCKET}/pipeline-runs/run2/quality/constraints.json"
    ]
    assert f"training execution: {execution}" in out
    assert f"dataset: s3://{BUCKET}/datasets/abc123/" in out

    approved = dogbreeds("show", "--env", "dev", "1", aws_url=url).stdout
    assert "live: this version, on dogbreeds-dev-endpoint" in approved
    assert "accuracy         0.7500" in approved and "(live" not in approved
    assert "Approved" in approved.split("approval history")[1] and "(beats the baseline)" in approved

    missing = dogbreeds("show", "--env", "dev", "3", aws_url=url)
    assert missing.returncode == 0, missing.stderr
    assert "accuracy         n/a  (live v1: 0.7500, n/a)" in missing.stdout
