"""Which baselines a monitor uses: the live model's, found through a moto server over HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from aws_test_env import aws_environment
from monitoring_cases import ENDPOINT, run_monitor, subprocess_env

from pipeline_code.container.dogbreeds_jobs.monitoring import monitor_baselines

BUCKET = "dogbreeds-test-data"
GROUP = "dogbreeds-test-models"
IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/pytorch-inference:2.6.0-cpu-py312"
ROLE = "arn:aws:iam::123456789012:role/sagemaker-execution"


def _upload_tree(s3, folder: Path, prefix: str) -> None:
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        s3.upload_file(str(path), BUCKET, f"{prefix}/{path.relative_to(folder).as_posix()}")


def _package(sagemaker, run_prefix: str, model_data: str) -> str:
    def pair(folder: str) -> dict:
        return {
            "Statistics": {
                "ContentType": "application/json",
                "S3Uri": f"{run_prefix}/{folder}/statistics.json",
            },
            "Constraints": {
                "ContentType": "application/json",
                "S3Uri": f"{run_prefix}/{folder}/constraints.json",
            },
        }

    return sagemaker.create_model_package(
        ModelPackageGroupName=GROUP,
        ModelApprovalStatus="Approved",
        InferenceSpecification={
            "Containers": [{"Image": IMAGE, "ModelDataUrl": model_data}],
            "SupportedContentTypes": ["image/jpeg"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        DriftCheckBaselines={
            "ModelDataQuality": pair("Preprocess/baseline"),
            "ModelQuality": pair("Evaluate/quality_baseline"),
        },
    )["ModelPackageArn"]


def _endpoint(sagemaker, model_name: str, container: dict, tags: list | None = None) -> None:
    sagemaker.create_model(
        ModelName=model_name, PrimaryContainer=container, ExecutionRoleArn=ROLE, Tags=tags or []
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=f"{model_name}-config",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": model_name,
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
                "InitialVariantWeight": 1.0,
            }
        ],
    )
    sagemaker.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=f"{model_name}-config")


def test_the_chain_finds_the_package_by_model_data_and_the_job_runs_on_s3_and_cloudwatch(
    aws, monitor_case, clean_capture, tmp_path
):
    s3 = boto3.client("s3")
    sagemaker = boto3.client("sagemaker")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    run_prefix = f"s3://{BUCKET}/pipeline-runs/exec-1"
    _upload_tree(s3, monitor_case.run, "pipeline-runs/exec-1")
    capture_root, _ = clean_capture
    _upload_tree(s3, capture_root / ENDPOINT, f"capture/{ENDPOINT}")
    sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
    old = _package(sagemaker, f"s3://{BUCKET}/pipeline-runs/exec-0", f"s3://{BUCKET}/old/model.tar.gz")
    live = _package(sagemaker, run_prefix, f"s3://{BUCKET}/live/model.tar.gz")
    # A newer package that is not deployed must not be picked either.
    _package(sagemaker, f"s3://{BUCKET}/pipeline-runs/exec-2", f"s3://{BUCKET}/newer/model.tar.gz")
    # As the deploy Lambda creates it: image and artifact copied from the package, no package name.
    _endpoint(
        sagemaker,
        "dogbreeds-test-model-2",
        {"Image": IMAGE, "ModelDataUrl": f"s3://{BUCKET}/live/model.tar.gz"},
    )
    assert old != live

    found = monitor_baselines.resolve_live(ENDPOINT, GROUP, sagemaker)
    assert found.source == f"model package {live}"
    assert found.data_statistics == f"{run_prefix}/Preprocess/baseline/statistics.json"
    assert found.prediction_statistics == f"{run_prefix}/Evaluate/prediction_baseline/statistics.json"

    result = run_monitor(
        "monitor_data_quality.py",
        "--capture-uri",
        f"s3://{BUCKET}/capture/{ENDPOINT}",
        "--output-uri",
        f"s3://{BUCKET}/monitoring/{ENDPOINT}/data_quality",
        "--window-end",
        "2026-11-20T10:04:00Z",
        "--run-id",
        "exec-42",
        "--baseline-uri",
        "",
        "--endpoint-name",
        ENDPOINT,
        "--model-package-group",
        GROUP,
        "--metrics-sink",
        "cloudwatch",
        "--metrics-namespace",
        "dogbreeds/test",
        "--workers",
        "1",
        env=subprocess_env(**aws_environment(aws)),
    )
    assert result.returncode == 0, result.stderr
    assert "records_analysed=300" in result.stdout
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="monitoring/")["Contents"]]
    # The run's own folder under the window's hour: a second run of the hour writes beside it.
    folder = f"monitoring/{ENDPOINT}/data_quality/2026/11/20/10/exec-42"
    assert sorted(keys) == sorted(
        f"{folder}/{name}"
        for name in ("constraint_violations.json", "report.html", "statistics.json", "summary.json")
    )
    summary = json.loads(s3.get_object(Bucket=BUCKET, Key=f"{folder}/summary.json")["Body"].read())
    assert summary["baselines"]["source"] == f"model package {live}"
    assert summary["violation_count"] == 0
    metrics = boto3.client("cloudwatch").list_metrics(Namespace="dogbreeds/test")["Metrics"]
    names = {m["MetricName"] for m in metrics}
    expected = {"RecordsAnalysed", "FeaturePSI", "FeatureKS", "PredictedBreedDistance", "DriftedFeatures"}
    assert expected | {"Judged"} <= names
    brightness = [m for m in metrics if {"Name": "Feature", "Value": "brightness"} in m["Dimensions"]]
    assert {m["MetricName"] for m in brightness} == {"FeaturePSI", "FeatureKS"}


def test_the_chain_prefers_the_container_package_name_then_a_tag(aws):
    sagemaker = boto3.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
    arn = _package(sagemaker, f"s3://{BUCKET}/pipeline-runs/exec-9", f"s3://{BUCKET}/m/model.tar.gz")
    tagged = "arn:aws:sagemaker:eu-west-1:123456789012:model-package/dogbreeds-test-models/7"
    _endpoint(
        sagemaker,
        "tagged-model",
        {"Image": IMAGE, "ModelDataUrl": "s3://elsewhere/model.tar.gz"},
        tags=[{"Key": monitor_baselines.MODEL_PACKAGE_TAG, "Value": tagged}],
    )
    assert monitor_baselines.live_model_package_arn(sagemaker, ENDPOINT, GROUP) == tagged
    sagemaker.delete_endpoint(EndpointName=ENDPOINT)
    _endpoint(sagemaker, "package-model", {"ModelPackageName": arn})
    assert monitor_baselines.live_model_package_arn(sagemaker, ENDPOINT, GROUP) == arn


def test_a_broken_chain_names_the_missing_link(aws):
    sagemaker = boto3.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
    _endpoint(sagemaker, "orphan-model", {"Image": IMAGE, "ModelDataUrl": "s3://nowhere/model.tar.gz"})
    with pytest.raises(monitor_baselines.BaselineResolutionError) as raised:
        monitor_baselines.resolve_live(ENDPOINT, GROUP, sagemaker)
    message = str(raised.value)
    assert "orphan-model" in message and GROUP in message and "--baseline-uri" in message
    with pytest.raises(monitor_baselines.BaselineResolutionError, match="no DriftCheckBaselines"):
        monitor_baselines.from_model_package({"ModelPackageArn": "arn:x", "DriftCheckBaselines": {}})


def test_a_package_description_file_and_customer_metadata(tmp_path):
    document = {
        "DriftCheckBaselines": {
            "ModelDataQuality": {
                "Statistics": {"S3Uri": "s3://b/r1/Preprocess/baseline/statistics.json"},
                "Constraints": {"S3Uri": "s3://b/r1/Preprocess/baseline/constraints.json"},
            },
            "ModelQuality": {
                "Statistics": {"S3Uri": "s3://b/r2/Evaluate/quality_baseline/statistics.json"},
                "Constraints": {"S3Uri": "s3://b/r2/Evaluate/quality_baseline/constraints.json"},
            },
        },
        "CustomerMetadataProperties": {"PredictionBaselineS3Uri": "s3://b/custom/statistics.json"},
    }
    path = tmp_path / "package.json"
    path.write_text(json.dumps(document))
    chosen = monitor_baselines.choose(str(path), "", "")
    # Preprocess and Evaluate may come from different (cached) runs: each keeps its own URI.
    assert chosen.data_constraints == "s3://b/r1/Preprocess/baseline/constraints.json"
    assert chosen.model_statistics == "s3://b/r2/Evaluate/quality_baseline/statistics.json"
    assert chosen.prediction_constraints == "s3://b/custom/constraints.json"
    with pytest.raises(monitor_baselines.BaselineResolutionError, match="give --endpoint-name"):
        monitor_baselines.choose("", "", "")


def test_the_prediction_baseline_folder_the_pipeline_registers_resolves_to_its_files():
    """The training pipeline registers the Evaluate output prefix (a folder), not a file."""
    quality = "s3://b/r2/Evaluate/quality_baseline"
    package = {
        "ModelPackageArn": "arn:aws:sagemaker:eu-west-1:1:model-package/g/3",
        "DriftCheckBaselines": {
            "ModelDataQuality": {
                "Statistics": {"S3Uri": "s3://b/r1/Preprocess/baseline/statistics.json"},
                "Constraints": {"S3Uri": "s3://b/r1/Preprocess/baseline/constraints.json"},
            },
            "ModelQuality": {
                "Statistics": {"S3Uri": f"{quality}/statistics.json"},
                "Constraints": {"S3Uri": f"{quality}/constraints.json"},
            },
        },
        "CustomerMetadataProperties": {"PredictionBaselineS3Uri": "s3://b/r3/Evaluate/prediction_baseline/"},
    }
    chosen = monitor_baselines.from_model_package(package)
    assert chosen.prediction_statistics == "s3://b/r3/Evaluate/prediction_baseline/statistics.json"
    assert chosen.prediction_constraints == "s3://b/r3/Evaluate/prediction_baseline/constraints.json"
