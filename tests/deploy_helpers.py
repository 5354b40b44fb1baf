"""Shared pieces of the deploy tests: the Lambda's environment as the stack sets it, a model registry
in moto, and the events EventBridge would deliver (moto emits none on approval)."""

from __future__ import annotations

from typing import Any

from aws_test_env import ACCOUNT, REGION
from cdk_helpers import project_context

from contract.naming import Names
from contract.settings import load_environment

BUCKET = f"dogbreeds-dev-data-{ACCOUNT}-{REGION}"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/11111111-2222-3333-4444-555555555555"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/dogbreeds-dev-sagemaker-execution"
IMAGE = f"763104351884.dkr.ecr.{REGION}.amazonaws.com/pytorch-inference:2.6.0-cpu-py312"


def environment(env_name: str = "dev", **endpoint_overrides: Any) -> tuple[Names, dict[str, str]]:
    """Names and the Lambda environment for one cdk.json environment, built by the stack's own code."""
    from stacks.functions.deploy_endpoint.function import deploy_environment

    context = project_context()
    context["environments"][env_name].setdefault("endpoint", {}).update(endpoint_overrides)
    if endpoint_overrides.get("kind") == "serverless":
        context["environments"][env_name].setdefault("monitoring", {})["enabled"] = False
        for block in context["environments"].values():  # no live accuracy to gate promotions on
            if (block.get("promotion") or {}).get("source") == env_name:
                block["promotion"]["live_accuracy_gate"] = False
    project, settings = load_environment(context, env_name)
    names = Names(project, env_name)
    return names, deploy_environment(
        names, settings.endpoint, bucket_name=BUCKET, key_arn=KEY_ARN, role_arn=ROLE_ARN
    )


def register_versions(sagemaker: Any, group: str, count: int) -> list[str]:
    """Register ``count`` versions (PendingManualApproval, as the pipeline does); return their ARNs."""
    sagemaker.create_model_package_group(ModelPackageGroupName=group)
    arns = []
    for version in range(1, count + 1):
        arns.append(
            sagemaker.create_model_package(
                ModelPackageGroupName=group,
                ModelApprovalStatus="PendingManualApproval",
                InferenceSpecification={
                    "Containers": [
                        {
                            "Image": IMAGE,
                            "ModelDataUrl": f"s3://{BUCKET}/pipeline-runs/run{version}/model.tar.gz",
                            "Environment": {"SAGEMAKER_PROGRAM": "inference.py"},
                        }
                    ],
                    "SupportedContentTypes": ["image/jpeg", "image/png"],
                    "SupportedResponseMIMETypes": ["application/json"],
                },
            )["ModelPackageArn"]
        )
    return arns


def decide(sagemaker: Any, group: str, arn: str, status: str) -> dict[str, Any]:
    """Set a version's approval status and return the event EventBridge would deliver for it."""
    sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus=status)
    version = int(arn.rsplit("/", 1)[1])
    return package_event(group, arn, version, status)


def package_event(group: str, arn: str, version: int, status: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": f"event-{version}-{status}",
        "detail-type": "SageMaker Model Package State Change",
        "source": "aws.sagemaker",
        "account": ACCOUNT,
        "region": REGION,
        "resources": [arn],
        "detail": {
            "ModelPackageGroupName": group,
            "ModelPackageVersion": version,
            "ModelPackageArn": arn,
            "ModelApprovalStatus": status,
            "ModelPackageStatus": "Completed",
        },
    }


def in_service_event(endpoint: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "endpoint-in-service",
        "detail-type": "SageMaker Endpoint State Change",
        "source": "aws.sagemaker",
        "account": ACCOUNT,
        "region": REGION,
        "resources": [f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{endpoint}"],
        "detail": {"EndpointName": endpoint, "EndpointStatus": "IN_SERVICE"},
    }
