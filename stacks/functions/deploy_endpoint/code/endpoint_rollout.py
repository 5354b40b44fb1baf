"""Create or update the endpoint for one approved model package, and roll back on rejection.

One ``Rollout`` serves one invocation. Every step checks before it acts (model exists? config exists?
already live?), so a duplicate or retried event converges to the same state instead of failing.
"""

from __future__ import annotations

from typing import Any

import endpoint_autoscaling
from botocore.exceptions import ClientError
from deploy_config import DeployConfig
from deploy_events import EndpointInService, PackageDecision
from deploy_logging import COMPLETED, FAILED, ROLLED_BACK, SKIPPED, STARTED, log_decision
from deploy_metrics import publish_live_version
from deploy_names import deployment_digest, parse_version, versioned_name
from endpoint_cleanup import clean_up

from contract import environment_variables

# A new deployment can only start from InService; these pass by themselves, so the event is retried.
BUSY_STATUSES = ("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting", "UpdateRollbackFailed")


# Read by the inference handler in the model container, which reports it as the model version.
MODEL_VERSION_VARIABLE = environment_variables.MODEL_VERSION


class EndpointBusyError(RuntimeError):
    """The endpoint is mid-change; raising makes Lambda retry the asynchronous event later."""


class PackageNotDeployableError(ValueError):
    """The model package lacks what a deployment needs; logged and dropped, retrying cannot help."""


def _not_found(error: ClientError) -> bool:
    # SageMaker reports a missing model, config or endpoint as a ValidationException "Could not find ...".
    message = error.response.get("Error", {}).get("Message", "")
    return error.response.get("Error", {}).get("Code") == "ValidationException" and (
        "Could not find" in message or "does not exist" in message
    )


class Rollout:
    def __init__(
        self, config: DeployConfig, sagemaker: Any, autoscaling: Any, cloudwatch: Any | None = None
    ) -> None:
        self.config = config
        self.sagemaker = sagemaker
        self.autoscaling = autoscaling
        # Publishes LiveModelVersion when a rollout ends; None (tests of other paths) publishes nothing.
        self.cloudwatch = cloudwatch

    # ---- entry points -------------------------------------------------------------------------

    def handle(self, request: PackageDecision | EndpointInService) -> dict[str, Any]:
        if isinstance(request, EndpointInService):
            return self.finish_rollout()
        if request.status == "Approved":
            return self.approve(request)
        return self.reject(request)

    def approve(self, decision: PackageDecision) -> dict[str, Any]:
        package = self.sagemaker.describe_model_package(ModelPackageName=decision.package_arn)
        status = package.get("ModelApprovalStatus")
        if status != "Approved":
            # Approved, then rejected before this ran: the later decision wins.
            return self._skip(f"package version {decision.version} is now {status}, not Approved")
        return self.deploy(package, reason="approved")

    def reject(self, decision: PackageDecision) -> dict[str, Any]:
        endpoint = self.describe_endpoint()
        if endpoint is None:
            return self._skip("no endpoint exists, nothing to roll back")
        self._require_idle(endpoint)
        live_version = parse_version(self.config.endpoint_config_prefix, endpoint["EndpointConfigName"])
        if live_version != decision.version:
            return self._skip(
                f"rejected version {decision.version} is not live (live: {live_version})",
            )
        remaining = [
            summary
            for summary in self.approved_packages()
            if summary["ModelPackageVersion"] != decision.version
        ]
        if not remaining:
            log_decision(
                "ERROR",
                "rejected version is live and no approved version remains; endpoint left as is",
                FAILED,
                version=decision.version,
                rejected_version=decision.version,
                endpoint=self.config.endpoint_name,
            )
            return {"action": "no-rollback-target", "rejected_version": decision.version}
        package = self.sagemaker.describe_model_package(ModelPackageName=remaining[0]["ModelPackageArn"])
        return self.deploy(package, reason=f"rollback from rejected version {decision.version}")

    def finish_rollout(self) -> dict[str, Any]:
        """After a rollout: autoscaling back on, old versions removed, deferred approvals deployed."""
        endpoint = self.describe_endpoint()
        if endpoint is None or endpoint["EndpointStatus"] != "InService":
            return self._skip("endpoint is not InService any more")
        live_version = parse_version(self.config.endpoint_config_prefix, endpoint["EndpointConfigName"])
        newest = next(iter(self.approved_packages()), None)
        # Asked before clean-up, which may delete the config of a version that was rolled back.
        attempted = (
            newest is not None
            and newest["ModelPackageVersion"] != live_version
            and self._was_attempted(newest)
        )
        self._report_live(endpoint["EndpointConfigName"], live_version, newest if attempted else None)
        if self.config.endpoint_kind == "realtime":
            endpoint_autoscaling.register(self.autoscaling, self.config)
        deleted = clean_up(self.sagemaker, self.config, endpoint["EndpointConfigName"])
        result: dict[str, Any] = {"action": "finished", "live_version": live_version, "deleted": deleted}
        if newest and newest["ModelPackageVersion"] != live_version and not attempted:
            # Approved while a rollout was in flight and its retries ran out: deploy it now. A version
            # that has a config was attempted already (and maybe rolled back by an alarm): leave it.
            package = self.sagemaker.describe_model_package(ModelPackageName=newest["ModelPackageArn"])
            result["deferred"] = self.deploy(package, reason="approval deferred by a rollout in flight")
        return result

    def _report_live(
        self, config_name: str, live_version: int | None, attempted: dict[str, Any] | None
    ) -> None:
        """Log the rollout's outcome and publish the live version (the dashboard shows both)."""
        fields = {
            "version": live_version, "endpoint_config": config_name, "endpoint": self.config.endpoint_name,
        }
        newer = attempted["ModelPackageVersion"] if attempted else None
        if newer is not None and live_version is not None and newer > live_version:
            log_decision(
                "WARNING",
                "deployment rolled back",
                ROLLED_BACK,
                rolled_back_version=newer,
                reason=(
                    f"approved version {newer} was deployed but version {live_version} serves: a rollback "
                    f"alarm fired during the canary or baking, or the update failed. Reject version "
                    f"{newer} once you know why"
                ),
                **fields,
            )
        else:
            log_decision("INFO", "deployment completed", COMPLETED, **fields)
        if self.cloudwatch is not None and live_version is not None:
            publish_live_version(self.cloudwatch, self.config, live_version)

    # ---- the deployment -----------------------------------------------------------------------

    def deploy(self, package: dict[str, Any], *, reason: str) -> dict[str, Any]:
        version = int(package["ModelPackageVersion"])
        container = self._container(package)
        digest = deployment_digest(
            {"package": package["ModelPackageArn"], "container": container, "settings": self._settings()}
        )
        model_name = versioned_name(self.config.model_prefix, version, digest)
        config_name = versioned_name(self.config.endpoint_config_prefix, version, digest)

        endpoint = self.describe_endpoint()
        if endpoint is not None:
            if endpoint["EndpointConfigName"] == config_name:
                return self._skip(f"version {version} is already live as {config_name}")
            if endpoint["EndpointStatus"] == "Failed":
                log_decision(
                    "ERROR",
                    "endpoint is Failed; SageMaker only allows deleting it. Delete it and approve again",
                    FAILED,
                    version=version,
                    endpoint=self.config.endpoint_name,
                    failure_reason=endpoint.get("FailureReason"),
                )
                return {"action": "endpoint-failed", "failure_reason": endpoint.get("FailureReason")}
            self._require_idle(endpoint)

        self._ensure_model(model_name, container)
        self._ensure_endpoint_config(config_name, model_name, endpoint)
        fields = {"version": version, "model": model_name, "endpoint_config": config_name, "reason": reason}
        if endpoint is None:
            self.sagemaker.create_endpoint(
                EndpointName=self.config.endpoint_name, EndpointConfigName=config_name
            )
            log_decision(
                "INFO", "creating endpoint", STARTED, endpoint=self.config.endpoint_name,
                strategy="new endpoint", **fields,
            )
            return {"action": "created", **fields}

        live_config = self.sagemaker.describe_endpoint_config(
            EndpointConfigName=endpoint["EndpointConfigName"]
        )
        endpoint_autoscaling.prepare_for_update(
            self.autoscaling, self.config, live_config["ProductionVariants"][0]
        )
        request: dict[str, Any] = {
            "EndpointName": self.config.endpoint_name,
            "EndpointConfigName": config_name,
        }
        plan: dict[str, Any] = {"strategy": "all at once"}
        if self.config.endpoint_kind == "realtime":
            # The canary is sized in instance capacity; a serverless endpoint (a cheap dev setup) gets
            # SageMaker's default update instead: blue/green, all traffic at once.
            request["DeploymentConfig"] = self.deployment_config()
            plan = {
                "strategy": "canary",
                "canary_percent": self.config.canary_percent,
                "canary_wait_seconds": self.config.canary_wait_seconds,
                "baking_seconds": self.config.termination_wait_seconds,
            }
        self.sagemaker.update_endpoint(**request)
        previous = endpoint["EndpointConfigName"]
        log_decision(
            "INFO", "updating endpoint", STARTED, endpoint=self.config.endpoint_name,
            previous_version=parse_version(self.config.endpoint_config_prefix, previous),
            previous_endpoint_config=previous, **plan, **fields,
        )
        return {"action": "updated", **fields}

    def deployment_config(self) -> dict[str, Any]:
        """Blue/green with a canary: shift canary_percent, bake, then the rest; alarms roll back."""
        return {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {
                    "Type": "CANARY",
                    "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": self.config.canary_percent},
                    "WaitIntervalInSeconds": self.config.canary_wait_seconds,
                },
                "TerminationWaitInSeconds": self.config.termination_wait_seconds,
            },
            "AutoRollbackConfiguration": {
                "Alarms": [{"AlarmName": name} for name in self.config.rollback_alarms]
            },
        }

    # ---- helpers ------------------------------------------------------------------------------

    def describe_endpoint(self) -> dict[str, Any] | None:
        try:
            return self.sagemaker.describe_endpoint(EndpointName=self.config.endpoint_name)
        except ClientError as error:
            if _not_found(error):
                return None
            raise

    def approved_packages(self) -> list[dict[str, Any]]:
        """Approved versions of the group, newest first."""
        summaries: list[dict[str, Any]] = []
        paginator = self.sagemaker.get_paginator("list_model_packages")
        for page in paginator.paginate(
            ModelPackageGroupName=self.config.model_package_group, ModelApprovalStatus="Approved"
        ):
            summaries.extend(page["ModelPackageSummaryList"])
        return sorted(summaries, key=lambda s: s["ModelPackageVersion"], reverse=True)

    def _was_attempted(self, summary: dict[str, Any]) -> bool:
        prefix = f"{self.config.endpoint_config_prefix}-v{summary['ModelPackageVersion']}-"
        page = self.sagemaker.list_endpoint_configs(NameContains=prefix)
        return any(item["EndpointConfigName"].startswith(prefix) for item in page["EndpointConfigs"])

    def _require_idle(self, endpoint: dict[str, Any]) -> None:
        if endpoint["EndpointStatus"] in BUSY_STATUSES:
            raise EndpointBusyError(
                f"endpoint {self.config.endpoint_name} is {endpoint['EndpointStatus']}; retrying later"
            )

    def _container(self, package: dict[str, Any]) -> dict[str, Any]:
        containers = (package.get("InferenceSpecification") or {}).get("Containers") or []
        if not containers:
            raise PackageNotDeployableError(
                f"model package {package.get('ModelPackageArn')} has no InferenceSpecification.Containers"
            )
        source = containers[0]
        missing = [key for key in ("Image", "ModelDataUrl") if not source.get(key)]
        if missing:
            raise PackageNotDeployableError(
                f"model package {package.get('ModelPackageArn')} container lacks {', '.join(missing)}"
            )
        container = {"Image": source["Image"], "ModelDataUrl": source["ModelDataUrl"]}
        # The inference handler reports this as the model version in every response (and so in
        # capture), which ties live traffic to its registry entry.
        container["Environment"] = {
            **(source.get("Environment") or {}),
            MODEL_VERSION_VARIABLE: package["ModelPackageArn"],
        }
        return container

    def _settings(self) -> dict[str, Any]:
        """Everything besides the package that shapes the model and config (goes into the digest)."""
        c = self.config
        return {
            "kind": c.endpoint_kind,
            "instances": [c.instance_type, c.initial_instance_count]
            if c.endpoint_kind == "realtime"
            else [c.serverless_memory_mb, c.serverless_max_concurrency],
            "capture": [c.data_capture_percent, c.capture_s3_uri],
            "isolation": c.network_isolation,
            "role": c.execution_role_arn,
            "key": c.kms_key_arn,
        }

    def _ensure_model(self, model_name: str, container: dict[str, Any]) -> None:
        try:
            self.sagemaker.describe_model(ModelName=model_name)
            return
        except ClientError as error:
            if not _not_found(error):
                raise
        self.sagemaker.create_model(
            ModelName=model_name,
            PrimaryContainer=container,
            ExecutionRoleArn=self.config.execution_role_arn,
            EnableNetworkIsolation=self.config.network_isolation,
        )

    def _ensure_endpoint_config(
        self, config_name: str, model_name: str, endpoint: dict[str, Any] | None
    ) -> None:
        try:
            self.sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
            return
        except ClientError as error:
            if not _not_found(error):
                raise
        c = self.config
        variant: dict[str, Any] = {"VariantName": c.variant_name, "ModelName": model_name}
        request: dict[str, Any] = {"EndpointConfigName": config_name, "ProductionVariants": [variant]}
        if c.endpoint_kind == "serverless":
            variant["ServerlessConfig"] = {
                "MemorySizeInMB": c.serverless_memory_mb,
                "MaxConcurrency": c.serverless_max_concurrency,
            }
        else:
            variant["InstanceType"] = c.instance_type
            variant["InitialInstanceCount"] = self._initial_count(endpoint)
            # Serverless endpoints take neither a volume key nor data capture.
            request["KmsKeyId"] = c.kms_key_arn
            if c.data_capture_percent > 0:
                request["DataCaptureConfig"] = {
                    "EnableCapture": True,
                    "InitialSamplingPercentage": c.data_capture_percent,
                    "DestinationS3Uri": c.capture_s3_uri,
                    "KmsKeyId": c.kms_key_arn,
                    "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
                    # JSON is stored as text; images (any other type) are stored base64-encoded.
                    "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]},
                }
        self.sagemaker.create_endpoint_config(**request)

    def _initial_count(self, endpoint: dict[str, Any] | None) -> int:
        """The green fleet starts as large as autoscaling has made the blue one, within the limits."""
        current = 0
        for variant in (endpoint or {}).get("ProductionVariants", []):
            if variant.get("VariantName") == self.config.variant_name:
                current = int(variant.get("DesiredInstanceCount") or variant.get("CurrentInstanceCount") or 0)
        return min(max(self.config.initial_instance_count, current), self.config.max_instances)

    def _skip(self, reason: str) -> dict[str, Any]:
        log_decision("INFO", "nothing to do", SKIPPED, reason=reason, endpoint=self.config.endpoint_name)
        return {"action": "none", "reason": reason}
