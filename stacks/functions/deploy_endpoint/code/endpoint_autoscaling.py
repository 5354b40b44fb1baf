"""Target-tracking autoscaling of the production variant, kept correct across endpoint updates.

AWS's rule ("Update endpoints that use auto scaling"): an UpdateEndpoint that changes the instance type
of a variant registered for autoscaling, or removes it, fails; deregister first and register again
after the update. Changing only the model is allowed. So before an update we deregister only when the
instance type or kind changes, and after every rollout (the endpoint's InService event) we register
the target and put the policy again; both calls are upserts, so repeating them is harmless.
"""

from __future__ import annotations

from typing import Any

from deploy_config import DeployConfig
from function_log import log

SERVICE_NAMESPACE = "sagemaker"
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
METRIC = "SageMakerVariantInvocationsPerInstance"
SCALE_IN_COOLDOWN_SECONDS = 300  # scale in slowly: a cold start costs more than an idle instance
SCALE_OUT_COOLDOWN_SECONDS = 60


def resource_id(config: DeployConfig) -> str:
    return f"endpoint/{config.endpoint_name}/variant/{config.variant_name}"


def is_registered(autoscaling: Any, config: DeployConfig) -> bool:
    targets = autoscaling.describe_scalable_targets(
        ServiceNamespace=SERVICE_NAMESPACE,
        ResourceIds=[resource_id(config)],
        ScalableDimension=SCALABLE_DIMENSION,
    )["ScalableTargets"]
    return bool(targets)


def prepare_for_update(autoscaling: Any, config: DeployConfig, live_variant: dict[str, Any]) -> bool:
    """Deregister the variant if the update would change its instance type or make it serverless.

    Returns True when it deregistered. Deregistering also deletes the target's scaling policies.
    """
    same_instances = (
        config.endpoint_kind == "realtime"
        and "ServerlessConfig" not in live_variant
        and live_variant.get("InstanceType") == config.instance_type
    )
    if same_instances or not is_registered(autoscaling, config):
        return False
    autoscaling.deregister_scalable_target(
        ServiceNamespace=SERVICE_NAMESPACE,
        ResourceId=resource_id(config),
        ScalableDimension=SCALABLE_DIMENSION,
    )
    log(
        "INFO",
        "deregistered autoscaling before an update that changes the variant's instances",
        resource_id=resource_id(config),
        from_instance_type=live_variant.get("InstanceType"),
        to_instance_type=config.instance_type if config.endpoint_kind == "realtime" else "serverless",
    )
    return True


def register(autoscaling: Any, config: DeployConfig) -> None:
    """Register the variant and its target-tracking policy (realtime endpoints only)."""
    autoscaling.register_scalable_target(
        ServiceNamespace=SERVICE_NAMESPACE,
        ResourceId=resource_id(config),
        ScalableDimension=SCALABLE_DIMENSION,
        MinCapacity=config.min_instances,
        MaxCapacity=config.max_instances,
    )
    autoscaling.put_scaling_policy(
        PolicyName=config.scaling_policy_name,
        ServiceNamespace=SERVICE_NAMESPACE,
        ResourceId=resource_id(config),
        ScalableDimension=SCALABLE_DIMENSION,
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": float(config.target_invocations_per_instance),
            "PredefinedMetricSpecification": {"PredefinedMetricType": METRIC},
            "ScaleInCooldown": SCALE_IN_COOLDOWN_SECONDS,
            "ScaleOutCooldown": SCALE_OUT_COOLDOWN_SECONDS,
        },
    )
    log(
        "INFO",
        "autoscaling registered",
        resource_id=resource_id(config),
        min_instances=config.min_instances,
        max_instances=config.max_instances,
        target_invocations_per_instance=config.target_invocations_per_instance,
    )
