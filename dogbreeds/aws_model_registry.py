"""An AWS environment's model registry: its model package group and the endpoint that serves one version.

`dogbreeds models` lists and decides versions through it; promotion (promote_aws.py) reads the
source environment's versions and their lineage through it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from contract import environment_variables

if TYPE_CHECKING:
    from contract.naming import Names


class Registry:
    """The environment's model package group and endpoint, through boto3."""

    def __init__(self, names: Names, region: str | None, session: Any = None) -> None:
        import boto3

        self.names = names
        session = session or boto3
        self.sagemaker = session.client("sagemaker", region_name=region)
        self.s3 = session.client("s3", region_name=region)

    def versions(self) -> list[dict[str, Any]]:
        summaries: list[dict[str, Any]] = []
        paginator = self.sagemaker.get_paginator("list_model_packages")
        for page in paginator.paginate(ModelPackageGroupName=self.names.model_package_group):
            summaries.extend(page["ModelPackageSummaryList"])
        return sorted(summaries, key=lambda s: s["ModelPackageVersion"])

    def live_version(self) -> int | None:
        """The version the endpoint serves: its main variant's model names its package in the
        DOGBREEDS_MODEL_VERSION variable (the deploy Lambda sets it to the package ARN), else the
        version in the endpoint config's name; None without an endpoint."""
        from botocore.exceptions import ClientError

        try:
            endpoint = self.sagemaker.describe_endpoint(EndpointName=self.names.endpoint)
        except ClientError as error:
            if "Could not find" in error.response.get("Error", {}).get("Message", ""):
                return None
            raise
        config_name = endpoint["EndpointConfigName"]
        try:
            config = self.sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
            variants = config.get("ProductionVariants") or []
            if variants:
                # The variant with the most traffic is the live model (a canary shares it for minutes).
                variant = max(variants, key=lambda v: float(v.get("InitialVariantWeight", 1.0)))
                model = self.sagemaker.describe_model(ModelName=variant["ModelName"])
                containers = (
                    [model["PrimaryContainer"]]
                    if model.get("PrimaryContainer")
                    else model.get("Containers", [])
                )
                for container in containers:
                    arn = (container.get("Environment") or {}).get(MODEL_VERSION_VARIABLE, "")
                    version = version_of_arn(arn, self.names.model_package_group)
                    if version is not None:
                        return version
        except ClientError:
            pass  # a config or model removed mid-rollout: fall back to the config's name
        return live_version_of(self.names, config_name)

    def describe(self, arn: str) -> dict[str, Any]:
        return self.sagemaker.describe_model_package(ModelPackageName=arn)

    def evaluation(self, package: dict[str, Any]) -> dict[str, Any] | None:
        """The package's evaluation.json (ModelMetrics ModelQuality.Statistics), or None."""
        import json

        from botocore.exceptions import BotoCoreError, ClientError

        uri = evaluation_uri(package)
        if not uri or not uri.startswith("s3://"):
            return None
        bucket, _, key = uri[len("s3://") :].partition("/")
        try:
            document = json.loads(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        except (ClientError, BotoCoreError, ValueError):
            return None
        return document if isinstance(document, dict) else None

    def execution_parameters(self, package: dict[str, Any]) -> dict[str, str] | None:
        """The parameters of the pipeline execution that registered the package (its
        MetadataProperties.GeneratedBy), or None when it names none or it is gone."""
        from botocore.exceptions import ClientError

        execution = pipeline_execution_of(package)
        if not execution:
            return None
        parameters: dict[str, str] = {}
        request: dict[str, Any] = {"PipelineExecutionArn": execution}
        try:
            while True:
                page = self.sagemaker.list_pipeline_parameters_for_execution(**request)
                parameters.update({p["Name"]: p["Value"] for p in page.get("PipelineParameters", [])})
                if not page.get("NextToken"):
                    return parameters
                request["NextToken"] = page["NextToken"]
        except ClientError:
            return None

    def decide(self, arn: str, status: str, description: str | None) -> None:
        request = {"ModelPackageArn": arn, "ModelApprovalStatus": status}
        if description:
            request["ApprovalDescription"] = description
        self.sagemaker.update_model_package(**request)


MODEL_VERSION_VARIABLE = environment_variables.MODEL_VERSION  # the deploy Lambda sets it


def version_of_arn(arn: str, group: str) -> int | None:
    match = re.fullmatch(rf"arn:[^:]+:sagemaker:[^:]*:[^:]*:model-package/{re.escape(group)}/([0-9]+)", arn)
    return int(match.group(1)) if match else None


def evaluation_uri(package: dict[str, Any]) -> str | None:
    return (package.get("ModelMetrics") or {}).get("ModelQuality", {}).get("Statistics", {}).get("S3Uri")


def pipeline_execution_of(package: dict[str, Any]) -> str | None:
    generated_by = (package.get("MetadataProperties") or {}).get("GeneratedBy", "")
    return generated_by if re.search(r":pipeline/[^/]+/execution/", generated_by) else None


def live_version_of(names: Names, endpoint_config_name: str) -> int | None:
    """The version in a config name the deploy Lambda made (``<prefix>-v<version>-<8 hex>``, see
    stacks/functions/deploy_endpoint/code/deploy_names.py); None for a config it did not make."""
    pattern = rf"{re.escape(names.endpoint_config_prefix)}-v([0-9]+)-[0-9a-f]{{8}}"
    match = re.fullmatch(pattern, endpoint_config_name)
    return int(match.group(1)) if match else None
