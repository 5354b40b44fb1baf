"""Find the baselines of the model that is actually live, and load them.

A monitor must compare traffic with the baselines of the model serving it, not of the newest
trained one: after a rollback or while a newer package waits for approval the two differ. So the
cloud default follows the chain endpoint -> endpoint config -> model -> model package ->
DriftCheckBaselines. ``--baseline-uri`` (local mode, tests, backfills) skips the chain and names a
training-pipeline run prefix instead.

A baseline set has three parts, laid out as the training pipeline writes them under
``pipeline-runs/<execution id>/``:

* data quality: ``Preprocess/baseline/{statistics,constraints}.json`` (image features);
* prediction: ``Evaluate/prediction_baseline/{statistics,constraints}.json`` (confidence and
  predicted breed on the test split);
* model quality: ``Evaluate/quality_baseline/{statistics,constraints}.json``.

The model package records the first and third in DriftCheckBaselines; the prediction baseline is
found beside the model-quality one (``../prediction_baseline/``), or at the URI in the package's
``CustomerMetadataProperties["PredictionBaselineS3Uri"]`` when that is set.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from . import monitor_io

DATA_DIR = "Preprocess/baseline"
PREDICTION_DIR = "Evaluate/prediction_baseline"
QUALITY_DIR = "Evaluate/quality_baseline"
PREDICTION_METADATA_KEY = "PredictionBaselineS3Uri"
# Tag a deployment may put on the SageMaker model to name its package (checked after the container).
MODEL_PACKAGE_TAG = "ModelPackageArn"


class BaselineResolutionError(RuntimeError):
    """The chain from endpoint to baselines is broken; the message names the missing link."""


@dataclass(frozen=True)
class BaselineSet:
    """Locations (s3:// or paths) of the six baseline files, and where they came from."""

    data_statistics: str
    data_constraints: str
    prediction_statistics: str
    prediction_constraints: str
    model_statistics: str
    model_constraints: str
    source: str

    def describe(self) -> dict[str, str]:
        return asdict(self)


def from_prefix(prefix: str) -> BaselineSet:
    """The baselines of one training-pipeline run (``s3://.../pipeline-runs/<id>`` or a folder)."""

    def at(folder: str, name: str) -> str:
        return monitor_io.join(prefix, folder, name)

    return BaselineSet(
        data_statistics=at(DATA_DIR, "statistics.json"),
        data_constraints=at(DATA_DIR, "constraints.json"),
        prediction_statistics=at(PREDICTION_DIR, "statistics.json"),
        prediction_constraints=at(PREDICTION_DIR, "constraints.json"),
        model_statistics=at(QUALITY_DIR, "statistics.json"),
        model_constraints=at(QUALITY_DIR, "constraints.json"),
        source=f"prefix {prefix}",
    )


def _sibling(uri: str, folder: str, name: str) -> str:
    """``.../Evaluate/quality_baseline/statistics.json`` -> ``.../Evaluate/<folder>/<name>``."""
    parent = uri.rsplit("/", 2)[0]
    return f"{parent}/{folder}/{name}"


def from_model_package(package: dict[str, Any]) -> BaselineSet:
    """The baselines a DescribeModelPackage response points at."""
    arn = package.get("ModelPackageArn", "<unknown package>")
    drift = package.get("DriftCheckBaselines") or {}
    try:
        data = drift["ModelDataQuality"]
        quality = drift["ModelQuality"]
        uris = {
            "data_statistics": data["Statistics"]["S3Uri"],
            "data_constraints": data["Constraints"]["S3Uri"],
            "model_statistics": quality["Statistics"]["S3Uri"],
            "model_constraints": quality["Constraints"]["S3Uri"],
        }
    except (KeyError, TypeError) as error:
        raise BaselineResolutionError(
            f"model package {arn} has no DriftCheckBaselines.ModelDataQuality and .ModelQuality "
            f"Statistics/Constraints (missing {error}); register it with the training pipeline"
        ) from error
    metadata = package.get("CustomerMetadataProperties") or {}
    # The training pipeline registers the prediction baseline's folder (the Evaluate output prefix).
    prediction = metadata.get(PREDICTION_METADATA_KEY) or _sibling(
        uris["model_statistics"], "prediction_baseline", "statistics.json"
    )
    prediction_statistics = prediction + "statistics.json" if prediction.endswith("/") else prediction
    return BaselineSet(
        **uris,
        prediction_statistics=prediction_statistics,
        prediction_constraints=prediction_statistics.rsplit("/", 1)[0] + "/constraints.json",
        source=f"model package {arn}",
    )


def live_model_package_arn(sagemaker: Any, endpoint_name: str, package_group: str = "") -> str:
    """Follow endpoint -> endpoint config -> model -> model package; every broken link is named.

    The model names its package in its container's ModelPackageName, else a ``ModelPackageArn``
    tag, else (a model created from the package's image and artifact, as the deploy Lambda does)
    the package of ``package_group`` whose container has the same ModelDataUrl.
    """
    endpoint = sagemaker.describe_endpoint(EndpointName=endpoint_name)
    config_name = endpoint["EndpointConfigName"]
    config = sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
    variants = config.get("ProductionVariants") or []
    if not variants:
        raise BaselineResolutionError(f"endpoint config {config_name} has no production variants")
    # The variant with the most traffic is the live model (a canary shares traffic for minutes).
    variant = max(variants, key=lambda v: float(v.get("InitialVariantWeight", 1.0)))
    model = sagemaker.describe_model(ModelName=variant["ModelName"])
    containers = [model["PrimaryContainer"]] if model.get("PrimaryContainer") else model.get("Containers", [])
    for container in containers:
        if container.get("ModelPackageName"):
            return container["ModelPackageName"]
    tags = sagemaker.list_tags(ResourceArn=model["ModelArn"]).get("Tags", [])
    for tag in tags:
        if tag["Key"] == MODEL_PACKAGE_TAG:
            return tag["Value"]
    data_urls = {c.get("ModelDataUrl") for c in containers if c.get("ModelDataUrl")}
    if package_group and data_urls:
        paginator = sagemaker.get_paginator("list_model_packages")
        for page in paginator.paginate(ModelPackageGroupName=package_group, SortOrder="Descending"):
            for summary in page["ModelPackageSummaryList"]:
                package = sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
                spec = package.get("InferenceSpecification", {}).get("Containers", [])
                if data_urls & {c.get("ModelDataUrl") for c in spec}:
                    return summary["ModelPackageArn"]
    raise BaselineResolutionError(
        f"model {model['ModelName']} of endpoint {endpoint_name} names no model package (no container "
        f"ModelPackageName, no {MODEL_PACKAGE_TAG} tag, and no package in group {package_group!r} with "
        f"its ModelDataUrl); pass --baseline-uri to monitor it against a chosen baseline"
    )


def resolve_live(endpoint_name: str, package_group: str = "", sagemaker: Any = None) -> BaselineSet:
    """The live model's baselines, looked up with boto3."""
    if sagemaker is None:  # pragma: no cover - the job's default client
        import boto3

        sagemaker = boto3.client("sagemaker")
    arn = live_model_package_arn(sagemaker, endpoint_name, package_group)
    return from_model_package(sagemaker.describe_model_package(ModelPackageName=arn))


def from_package_file(location: str) -> BaselineSet:
    """A saved DescribeModelPackage response (at least ``DriftCheckBaselines``) as a JSON file."""
    document = load_json(location, "model package description")
    if not isinstance(document, dict):
        raise BaselineResolutionError(f"{location} is not a JSON object with DriftCheckBaselines")
    return from_model_package({"ModelPackageArn": location, **document})


def choose(baseline_uri: str, endpoint_name: str, package_group: str = "") -> BaselineSet:
    """``--baseline-uri`` when given (a run prefix, or a ``.json`` package description), else the
    live chain."""
    if baseline_uri.strip():
        uri = baseline_uri.strip()
        return from_package_file(uri) if uri.endswith(".json") else from_prefix(uri)
    if not endpoint_name:
        raise BaselineResolutionError("give --endpoint-name (to find the live model) or --baseline-uri")
    return resolve_live(endpoint_name, package_group)


def load_json(location: str, what: str) -> dict[str, Any]:
    """One baseline file, parsed; errors name the file and what it was meant to be."""
    try:
        return json.loads(monitor_io.read_bytes(location))
    except monitor_io.MonitorDataError as error:
        raise BaselineResolutionError(f"{what} baseline: {error}") from error
    except json.JSONDecodeError as error:
        raise BaselineResolutionError(f"{what} baseline {location} is not JSON: {error}") from error
