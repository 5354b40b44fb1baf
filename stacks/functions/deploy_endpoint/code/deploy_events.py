"""Turn the EventBridge events the function receives into typed requests, or say why not.

Two events reach the function: a model package changed approval status (deploy or roll back), and
the endpoint became InService (a rollout finished: re-attach autoscaling, clean up, catch up on
approvals that arrived while it was busy).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deploy_config import DeployConfig

from contract.events import ENDPOINT_STATE_CHANGE, SAGEMAKER_SOURCE
from contract.events import MODEL_PACKAGE_STATE_CHANGE as PACKAGE_STATE_CHANGE

DECISIONS = ("Approved", "Rejected")


class MalformedEventError(ValueError):
    """The event cannot be acted on; it is logged with this reason and dropped (never retried)."""


@dataclass(frozen=True)
class PackageDecision:
    package_arn: str
    version: int
    status: str  # Approved or Rejected


@dataclass(frozen=True)
class EndpointInService:
    endpoint_name: str


def parse_event(event: Any, config: DeployConfig) -> PackageDecision | EndpointInService:
    if not isinstance(event, dict):
        raise MalformedEventError(f"event must be a JSON object, got {type(event).__name__}")
    if event.get("source") != SAGEMAKER_SOURCE:
        raise MalformedEventError(f"source must be {SAGEMAKER_SOURCE!r}, got {event.get('source')!r}")
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise MalformedEventError("event has no 'detail' object")
    detail_type = event.get("detail-type")
    if detail_type == PACKAGE_STATE_CHANGE:
        return _package_decision(detail, config)
    if detail_type == ENDPOINT_STATE_CHANGE:
        return _endpoint_in_service(detail, config)
    raise MalformedEventError(
        f"detail-type must be {PACKAGE_STATE_CHANGE!r} or {ENDPOINT_STATE_CHANGE!r}, got {detail_type!r}"
    )


def _package_decision(detail: dict[str, Any], config: DeployConfig) -> PackageDecision:
    group = detail.get("ModelPackageGroupName")
    if group != config.model_package_group:
        raise MalformedEventError(
            f"model package group {group!r} is not this environment's {config.model_package_group!r}"
        )
    status = detail.get("ModelApprovalStatus")
    if status not in DECISIONS:
        raise MalformedEventError(
            f"ModelApprovalStatus must be one of {', '.join(DECISIONS)}, got {status!r}"
        )
    arn = detail.get("ModelPackageArn")
    if not isinstance(arn, str) or f":model-package/{group.lower()}/" not in arn.lower():
        raise MalformedEventError(f"ModelPackageArn {arn!r} is not a version ARN in group {group!r}")
    version = detail.get("ModelPackageVersion")
    if isinstance(version, float) and version.is_integer():
        version = int(version)  # EventBridge JSON may carry numbers as 3.0
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise MalformedEventError(f"ModelPackageVersion must be a positive integer, got {version!r}")
    return PackageDecision(package_arn=arn, version=version, status=status)


def _endpoint_in_service(detail: dict[str, Any], config: DeployConfig) -> EndpointInService:
    name = detail.get("EndpointName")
    if name != config.endpoint_name:
        raise MalformedEventError(f"endpoint {name!r} is not this environment's {config.endpoint_name!r}")
    status = str(detail.get("EndpointStatus", ""))
    # Events spell it IN_SERVICE, the API InService.
    if status.replace("_", "").lower() != "inservice":
        raise MalformedEventError(f"EndpointStatus must be IN_SERVICE, got {status!r}")
    return EndpointInService(endpoint_name=name)
