"""Run a RegisterModel step (the SDK's ModelStep register) against the local model registry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dogbreeds.local_executor.errors import DefinitionError, StepFailedError
from dogbreeds.local_executor.step_context import StepContext
from dogbreeds.local_registry import APPROVAL_STATUSES, LocalModelRegistry, RegistryError


def check_registration(name: str, arguments: Mapping[str, Any]) -> None:
    if not arguments.get("ModelPackageGroupName"):
        raise DefinitionError(f"RegisterModel step {name!r} has no ModelPackageGroupName")
    containers = arguments.get("InferenceSpecification", {}).get("Containers", [])
    if not containers:
        raise DefinitionError(f"RegisterModel step {name!r} has no InferenceSpecification.Containers")


def run_registration(
    context: StepContext, registry: LocalModelRegistry, source: Mapping[str, Any]
) -> dict[str, Any]:
    """Add a version to the local registry; return the step's properties (DescribeModelPackage's shape)."""
    arguments = context.arguments
    status = arguments.get("ModelApprovalStatus", "PendingManualApproval")
    if status not in APPROVAL_STATUSES:
        raise StepFailedError(
            context.name, f"ModelApprovalStatus {status!r} is not one of {', '.join(APPROVAL_STATUSES)}"
        )
    containers = arguments["InferenceSpecification"]["Containers"]
    model_data_url = containers[0].get("ModelDataUrl", "")
    if model_data_url.startswith("s3://") and not context.local_s3.exists(model_data_url):
        raise StepFailedError(context.name, f"the model data {model_data_url!r} does not exist")
    try:
        package = registry.register(
            group=arguments["ModelPackageGroupName"],
            model_data_url=model_data_url,
            approval_status=status,
            model_metrics=_drop_empty(arguments.get("ModelMetrics", {})),
            drift_check_baselines=_drop_empty(arguments.get("DriftCheckBaselines", {})),
            inference_specification=arguments["InferenceSpecification"],
            customer_metadata_properties=arguments.get("CustomerMetadataProperties", {}),
            source=source,
            description=arguments.get("ModelPackageDescription", ""),
        )
    except RegistryError as error:
        raise StepFailedError(context.name, str(error)) from None
    context.step_dir.mkdir(parents=True, exist_ok=True)
    with context.log_path.open("a") as log:
        log.write(
            f"registered {package['group']} version {package['version']} ({package['approval_status']})\n"
        )
    return {
        **arguments,
        "ModelPackageArn": package["arn"],
        "ModelPackageName": f"{package['group']}/{package['version']}",
        "ModelPackageVersion": package["version"],
        "ModelPackageStatus": "Completed",
    }


def _drop_empty(section: Mapping[str, Any]) -> dict[str, Any]:
    # The SDK emits `"Bias": {}` and `"Explainability": {}`; they say nothing, so keep them out.
    return {key: value for key, value in section.items() if value not in ({}, None, [])}
