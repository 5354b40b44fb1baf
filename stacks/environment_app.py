"""Compose one environment's stacks into a CDK app. app.py and the tests both call this."""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk

from contract.naming import Names
from contract.settings import EnvironmentSettings, PromotionPeers, load_environment_with_peers
from stacks.deployment_stack import DeploymentStack
from stacks.monitoring_stack import MonitoringStack
from stacks.nag import add_nag_checks
from stacks.storage_stack import StorageStack
from stacks.training_stack import TrainingStack


@dataclass
class EnvironmentStacks:
    names: Names
    settings: EnvironmentSettings
    storage: StorageStack
    training: TrainingStack | None  # None with training.enabled false
    deployment: DeploymentStack
    monitoring: MonitoringStack
    peers: PromotionPeers


def build_environment(app: cdk.App, env_name: str | None = None) -> EnvironmentStacks:
    """Validate the chosen environment's settings and add its stacks to ``app``."""
    context = {
        key: app.node.try_get_context(key) for key in ("project", "environments")
    }
    context = {key: value for key, value in context.items() if value is not None}
    project, settings, peers = load_environment_with_peers(
        context, env_name or app.node.try_get_context("env")
    )
    names = Names(project, env_name or app.node.try_get_context("env") or "dev")
    deploy_env = (
        cdk.Environment(account=settings.account, region=settings.region)
        if settings.account
        else None
    )
    storage = StorageStack(
        app,
        names.stack("storage"),
        names=names,
        settings=settings,
        peers=peers,
        env=deploy_env,
        description=f"{names.base}: KMS key, buckets, SageMaker execution role, model package group",
    )
    # An environment that only receives promoted models has no training pipeline.
    training = (
        TrainingStack(
            app,
            names.stack("training"),
            names=names,
            settings=settings.training,
            bucket=storage.bucket,
            key=storage.key,
            execution_role=storage.execution_role,
            alerts_topic=storage.alerts_topic,
            env=deploy_env,
            description=f"{names.base}: SageMaker training pipeline",
        )
        if settings.training.enabled
        else None
    )
    deployment = DeploymentStack(
        app,
        names.stack("deployment"),
        names=names,
        settings=settings,
        storage=storage,
        env=deploy_env,
        description=f"{names.base}: approval-driven endpoint deployment, rollback alarms and alerts",
    )
    # Monitoring: pipeline, schedule, alarms, dashboard, drift-triggered retraining.
    monitoring = MonitoringStack(
        app,
        names.stack("monitoring"),
        names=names,
        settings=settings,
        bucket=storage.bucket,
        key=storage.key,
        execution_role=storage.execution_role,
        alerts_topic=storage.alerts_topic,
        env=deploy_env,
        description=f"{names.base}: monitoring pipeline, schedule, alarms, dashboard, retraining",
    )
    for stack in (storage, training, deployment, monitoring):
        if stack is None:
            continue
        cdk.Tags.of(stack).add("project", names.project)
        cdk.Tags.of(stack).add("environment", names.env)
    add_nag_checks(app)
    return EnvironmentStacks(
        names=names,
        settings=settings,
        storage=storage,
        training=training,
        deployment=deployment,
        monitoring=monitoring,
        peers=peers,
    )
