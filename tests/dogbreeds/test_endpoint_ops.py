"""`dogbreeds models deploy-log` and `models teardown-endpoint` as real subprocesses against a moto server."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import boto3
from aws_test_env import aws_environment
from repo_paths import REPO_ROOT

ROLE_ARN = "arn:aws:iam::123456789012:role/dogbreeds-dev-endpoint-model"
IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/inference:latest"


def dogbreeds(*args: str, aws_url: str):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS="1", **aws_environment(aws_url))
    return subprocess.run(
        [sys.executable, "-m", "dogbreeds", "models", *args],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )


def test_deploy_log_prints_the_lambdas_events(aws):  # noqa: F811
    logs = boto3.client("logs")
    group = "/aws/lambda/dogbreeds-dev-deploy-endpoint"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="2024/01/01/[$LATEST]abc")
    now = int(time.time() * 1000)
    logs.put_log_events(
        logGroupName=group, logStreamName="2024/01/01/[$LATEST]abc",
        logEvents=[
            {"timestamp": now - 2000, "message": "created endpoint dogbreeds-dev-endpoint"},
            {"timestamp": now - 1000, "message": "rollout of version 3 complete"},
        ],
    )
    result = dogbreeds("deploy-log", "--env", "dev", "--since", "10", aws_url=aws)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("created endpoint dogbreeds-dev-endpoint")
    assert lines[1].endswith("rollout of version 3 complete")


def test_deploy_log_without_a_log_group_says_the_lambda_has_not_run(aws):  # noqa: F811
    result = dogbreeds("deploy-log", "--env", "dev", aws_url=aws)
    assert result.returncode == 1
    assert "deploy Lambda has not run" in result.stderr
    assert "Traceback" not in result.stderr


def _deploy(sagemaker, env: str, version: int) -> None:
    suffix = f"v{version}-0123abcd"
    model = f"dogbreeds-{env}-model-{suffix}"
    config = f"dogbreeds-{env}-config-{suffix}"
    sagemaker.create_model(
        ModelName=model, ExecutionRoleArn=ROLE_ARN, PrimaryContainer={"Image": IMAGE}
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=config,
        ProductionVariants=[{
            "VariantName": "AllTraffic", "ModelName": model,
            "InitialInstanceCount": 1, "InstanceType": "ml.m5.large",
        }],
    )  # fmt: skip
    if version == 1:
        sagemaker.create_endpoint(EndpointName=f"dogbreeds-{env}-endpoint", EndpointConfigName=config)


def _remaining(sagemaker) -> set[str]:
    return (
        {e["EndpointName"] for e in sagemaker.list_endpoints()["Endpoints"]}
        | {c["EndpointConfigName"] for c in sagemaker.list_endpoint_configs()["EndpointConfigs"]}
        | {m["ModelName"] for m in sagemaker.list_models()["Models"]}
    )


def test_teardown_deletes_only_the_environments_endpoint_configs_and_models(aws):  # noqa: F811
    sagemaker = boto3.client("sagemaker")
    for env in ("dev", "staging"):
        _deploy(sagemaker, env, 1)
        _deploy(sagemaker, env, 2)
    staging = {n for n in _remaining(sagemaker) if n.startswith("dogbreeds-staging-")}

    result = dogbreeds("teardown-endpoint", "--env", "dev", "--yes", aws_url=aws)
    assert result.returncode == 0, result.stderr
    assert "deleted endpoint dogbreeds-dev-endpoint" in result.stdout
    for name in ("config-v1", "config-v2", "model-v1", "model-v2"):
        assert f"dogbreeds-dev-{name}-0123abcd" in result.stdout
    assert _remaining(sagemaker) == staging

    again = dogbreeds("teardown-endpoint", "--env", "dev", "--yes", aws_url=aws)
    assert again.returncode == 0, again.stderr
    assert "nothing to delete" in again.stdout


def test_teardown_without_yes_and_without_a_terminal_refuses(aws):  # noqa: F811
    sagemaker = boto3.client("sagemaker")
    _deploy(sagemaker, "dev", 1)
    before = _remaining(sagemaker)
    result = dogbreeds("teardown-endpoint", "--env", "dev", aws_url=aws)
    assert result.returncode == 2
    error_lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(error_lines) == 1 and "pass --yes" in error_lines[0]
    assert _remaining(sagemaker) == before
