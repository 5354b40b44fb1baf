"""`dogbreeds models list|approve|reject` as a real subprocess against a moto server, and its errors
without credentials or with bad input."""

from __future__ import annotations

import os
import subprocess
import sys

import boto3
import pytest
from cdk_helpers import REPO_ROOT
from deploy_helpers import environment, lambda_module, package_event, register_versions
from moto_fixtures import aws, aws_environment, moto_server  # noqa: F401

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


def test_list_shows_statuses_and_the_version_the_lambda_made_live(registry, monkeypatch):
    url, sagemaker, arns = registry
    sagemaker.update_model_package(ModelPackageArn=arns[2], ModelApprovalStatus="Approved")
    # Deploy v3 with the real handler, so the CLI reads the Lambda's config name back.
    _, env = environment("dev")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    handler = lambda_module("deploy_handler")
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
