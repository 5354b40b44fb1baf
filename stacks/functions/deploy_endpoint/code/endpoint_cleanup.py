"""Delete endpoint configs and models of old deployments, keeping the newest ``keep_versions``.

Runs only when the endpoint is InService (no rollout in flight), never deletes the live config or
its model, and only touches names this Lambda created (``<prefix>-v<version>-<digest>``), so
anything else in the account is safe.
"""

from __future__ import annotations

from typing import Any

from deploy_config import DeployConfig
from deploy_names import name_suffix, parse_version
from function_log import log


def _list_all(sagemaker: Any, operation: str, key: str, name_key: str, prefix: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in sagemaker.get_paginator(operation).paginate(NameContains=f"{prefix}-v"):
        items.extend(item for item in page[key] if name_suffix(prefix, item[name_key]) is not None)
    return items


def clean_up(sagemaker: Any, config: DeployConfig, live_config_name: str) -> dict[str, list[str]]:
    configs = _list_all(
        sagemaker, "list_endpoint_configs", "EndpointConfigs", "EndpointConfigName",
        config.endpoint_config_prefix,
    )
    # Newest first; the version breaks ties between configs created within the same millisecond.
    configs.sort(
        key=lambda item: (
            item["CreationTime"],
            parse_version(config.endpoint_config_prefix, item["EndpointConfigName"]),
        ),
        reverse=True,
    )
    kept = {item["EndpointConfigName"] for item in configs[: config.keep_versions]} | {live_config_name}
    deleted_configs = []
    for item in configs:
        name = item["EndpointConfigName"]
        if name not in kept:
            sagemaker.delete_endpoint_config(EndpointConfigName=name)
            deleted_configs.append(name)

    kept_suffixes = {name_suffix(config.endpoint_config_prefix, name) for name in kept}
    deleted_models = []
    for item in _list_all(sagemaker, "list_models", "Models", "ModelName", config.model_prefix):
        name = item["ModelName"]
        if name_suffix(config.model_prefix, name) not in kept_suffixes:
            sagemaker.delete_model(ModelName=name)
            deleted_models.append(name)
    if deleted_configs or deleted_models:
        log(
            "INFO",
            "cleaned up old deployments",
            deleted_endpoint_configs=deleted_configs,
            deleted_models=deleted_models,
            keep_versions=config.keep_versions,
        )
    return {"endpoint_configs": deleted_configs, "models": deleted_models}
