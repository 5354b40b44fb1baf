"""`dogbreeds models list|show|approve|reject --env NAME [VERSION]`: an AWS environment's model registry.

`promote VERSION --from SOURCE --to TARGET` (dogbreeds/promote_aws.py) moves a version on.

`deploy-log` and `teardown-endpoint` (dogbreeds/endpoint_ops.py) follow and remove the deploy Lambda's work.

`list` and `show` put the evidence next to the decision: each version's accuracy, top-5 and F1 from
the evaluation.json its ModelMetrics name (read from S3), the AccuracyThreshold of the pipeline
execution that registered it, and which version is live on the endpoint.

Approving a version is the deployment: the environment's EventBridge rule hands the decision to the
deploy Lambda, which rolls the version out to the endpoint (blue/green canary, alarms roll it back).
Rejecting the live version rolls the endpoint back to the newest approved version that remains.
Names (package group, endpoint, config prefix) come from cdk.json through contract.settings and
contract.naming, the same way the stacks get them.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from contract import environment_variables
from contract.naming import Names
from dogbreeds.environment import CommandError, resolve_environment
from dogbreeds.model_evidence import flatten_s3_uris

DECISIONS = {"approve": "Approved", "reject": "Rejected"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "models", help="list, approve or reject model versions in an AWS environment's registry"
    )
    actions = parser.add_subparsers(dest="models_command", metavar="ACTION")

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--env", required=True, help="environment name from cdk.json (dev, staging, prod)")
        sub.add_argument(
            "--cdk-json",
            type=Path,
            default=None,
            help="cdk.json to read names from (default: ./cdk.json, else the project's)",
        )

    list_parser = actions.add_parser(
        "list", help="versions with status, metrics and threshold, and which one is live"
    )
    common(list_parser)
    list_parser.set_defaults(func=_run)
    show_parser = actions.add_parser(
        "show", help="one version: metrics against the live one, baselines, source execution, approval"
    )
    common(show_parser)
    show_parser.add_argument("version", type=int, help="model package version number (see `models list`)")
    show_parser.set_defaults(func=_run)
    for action, status in DECISIONS.items():
        sub = actions.add_parser(
            action,
            help=f"mark a version {status}; "
            + ("the deploy Lambda rolls it out" if action == "approve" else "rolls back if it is live"),
        )
        common(sub)
        sub.add_argument("version", type=int, help="model package version number (see `models list`)")
        sub.add_argument("--description", default=None, help="approval note stored with the version")
        sub.set_defaults(func=_run)
    log_parser = actions.add_parser(
        "deploy-log", help="print the deploy Lambda's CloudWatch log events (--follow polls until Ctrl-C)"
    )
    common(log_parser)
    log_parser.add_argument(
        "--since", type=float, default=60.0, metavar="MINUTES", help="print events from this many minutes ago"
    )
    log_parser.add_argument("--follow", action="store_true", help="keep polling for new events until Ctrl-C")
    log_parser.set_defaults(func=_run_endpoint_ops)
    teardown_parser = actions.add_parser(
        "teardown-endpoint",
        help="delete the endpoint the deploy Lambda created, then its endpoint configs and models",
    )
    common(teardown_parser)
    teardown_parser.add_argument(
        "--yes", action="store_true", help="delete without asking (required when stdin is not a terminal)"
    )
    teardown_parser.set_defaults(func=_run_endpoint_ops)
    promote_parser = actions.add_parser(
        "promote",
        help="copy a version from the source environment into the target's registry, gated on how it "
        "behaved in the source",
    )
    promote_parser.add_argument("version", type=int, help="the source's model package version")
    promote_parser.add_argument("--from", dest="source", required=True, help="source environment")
    promote_parser.add_argument("--to", dest="target", required=True, help="target environment")
    promote_parser.add_argument("--reason", default="", help="why; recorded with the promoted version")
    promote_parser.add_argument(
        "--force", action="store_true", help="promote although gates fail (needs --reason; recorded)"
    )
    promote_parser.add_argument(
        "--cdk-json", type=Path, default=None,
        help="cdk.json to read names from (default: ./cdk.json, else the project's)",
    )  # fmt: skip
    promote_parser.set_defaults(func=_run_promote)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def _run_promote(args: argparse.Namespace) -> int:
    from dogbreeds import promote_aws

    return promote_aws.run(args)


def _run_endpoint_ops(args: argparse.Namespace) -> int:
    from dogbreeds import endpoint_ops

    try:
        names, region = _environment(args.env, args.cdk_json)
    except CommandError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.models_command == "deploy-log":
        return endpoint_ops.print_deploy_log(names, region, args.since, args.follow)
    return endpoint_ops.teardown_endpoint(names, region, args.yes)


def _run(args: argparse.Namespace) -> int:
    try:
        names, region = _environment(args.env, args.cdk_json)
        registry = Registry(names, region)
        if args.models_command == "list":
            _print_versions(registry, registry.versions(), registry.live_version(), names)
        elif args.models_command == "show":
            _show(registry, names, args.version)
        else:
            _decide(registry, names, args.version, DECISIONS[args.models_command], args.description)
        return 0
    except CommandError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    # botocore errors (credentials, region, access, throttling) go up to aws_errors, via cli.main.


def _environment(env_name: str, cdk_json: Path | None) -> tuple[Names, str | None]:
    names, settings = resolve_environment(env_name, cdk_json)
    return names, settings.region


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


def _print_versions(
    registry: Registry, versions: list[dict[str, Any]], live: int | None, names: Names
) -> None:
    from dogbreeds.model_evidence import metric_columns, metric_header, metrics_of, newer_marker

    if not versions:
        print(f"No versions registered in {names.model_package_group} yet (run the training pipeline).")
        return
    print(f"{'VERSION':>7}  {'STATUS':<22}  {'CREATED':<20}  {metric_header()}  {'THRESHOLD':>9}  LIVE")
    for summary in versions:
        version = summary["ModelPackageVersion"]
        status = summary.get("ModelApprovalStatus", "")
        created = summary["CreationTime"].strftime("%Y-%m-%d %H:%M:%S")
        package = registry.describe(summary["ModelPackageArn"])
        metrics = metrics_of(registry.evaluation(package))
        threshold = (registry.execution_parameters(package) or {}).get("AccuracyThreshold", "n/a")
        marker = newer_marker(version, live, status)
        if marker == "live":
            marker = f"live on {names.endpoint}"
        print(
            f"{version:>7}  {status:<22}  {created:<20}  {metric_columns(metrics)}  {threshold:>9}  "
            f"{marker}".rstrip()
        )
    if live is None:
        print(f"\nNo version is live: {names.endpoint} does not exist yet. Approve a version to create it.")


def _show(registry: Registry, names: Names, version: int) -> None:
    from dogbreeds.model_evidence import comparison_lines, metrics_of

    summaries = {s["ModelPackageVersion"]: s for s in registry.versions()}
    if version not in summaries:
        known = ", ".join(str(v) for v in sorted(summaries)) or "none"
        raise CommandError(
            f"version {version} is not in {names.model_package_group}; registered versions: {known}"
        )
    package = registry.describe(summaries[version]["ModelPackageArn"])
    live = registry.live_version()
    print(f"{names.model_package_group} version {version}: {package.get('ModelApprovalStatus', '')}")
    print(f"arn: {package['ModelPackageArn']}")
    containers = package.get("InferenceSpecification", {}).get("Containers", [])
    print(f"model: {containers[0].get('ModelDataUrl', 'unknown') if containers else 'unknown'}")
    live_label, live_metrics = None, None
    if live is None:
        print(f"live: none ({names.endpoint} serves no version of this group)")
    elif live == version:
        print(f"live: this version, on {names.endpoint}")
    else:
        print(f"live: version {live} on {names.endpoint}")
        if live in summaries:
            live_label = f"live v{live}"
            live_package = registry.describe(summaries[live]["ModelPackageArn"])
            live_metrics = metrics_of(registry.evaluation(live_package))
    print(f"metrics (from {evaluation_uri(package) or 'n/a'}):")
    for line in comparison_lines(metrics_of(registry.evaluation(package)), live_metrics, live_label):
        print(line)
    parameters = registry.execution_parameters(package)
    print(f"  threshold passed {(parameters or {}).get('AccuracyThreshold', 'n/a')}")
    print("baselines:")
    baselines = flatten_s3_uris(package.get("DriftCheckBaselines") or {})
    for name, uri in sorted(baselines.items()) or [("none", "")]:
        print(f"  {name:<30} {uri}".rstrip())
    lineage = package.get("CustomerMetadataProperties") or {}
    execution = pipeline_execution_of(package) or lineage.get("TrainingExecutionArn", "unknown")
    print(f"training execution: {execution}")
    print(f"dataset: {(parameters or {}).get('DatasetS3Uri') or lineage.get('DatasetS3Uri', 'unknown')}")
    if lineage.get("PromotedFromPackageArn"):
        reason = lineage.get("PromotionReason", "-")
        print(
            f"promoted from {lineage.get('PromotedFromEnvironment', '?')}: "
            f"{lineage['PromotedFromPackageArn']} by {lineage.get('PromotedBy', '?')} at "
            f"{lineage.get('PromotedAt', '?')}; gates {lineage.get('PromotionGates', '?')} "
            f"({lineage.get('PromotionGatesUri', 'no gates.json')})"
            + (f"; reason: {reason}" if reason != "-" else "")
        )
    print("approval history (the registry keeps the latest decision only; CloudTrail has every change):")
    print(f"  {package['CreationTime'].isoformat(timespec='seconds'):<26} registered")
    if package.get("LastModifiedTime"):
        note = f"  ({package['ApprovalDescription']})" if package.get("ApprovalDescription") else ""
        who = (package.get("LastModifiedBy") or {}).get("UserProfileName")
        by = f" by {who}" if who else ""
        print(f"  {package['LastModifiedTime'].isoformat(timespec='seconds'):<26} "
              f"{package.get('ModelApprovalStatus', '')}{by}{note}")  # fmt: skip


def _decide(registry: Registry, names: Names, version: int, status: str, description: str | None) -> None:
    versions = {s["ModelPackageVersion"]: s for s in registry.versions()}
    if version not in versions:
        known = ", ".join(str(v) for v in sorted(versions)) or "none"
        raise CommandError(
            f"version {version} is not in {names.model_package_group}; registered versions: {known}"
        )
    registry.decide(versions[version]["ModelPackageArn"], status, description)
    print(f"Version {version} of {names.model_package_group} is now {status}.")
    if status == "Approved":
        print(f"The deploy Lambda rolls it out to {names.endpoint} (blue/green canary, alarms roll back).")
    else:
        print(f"If it was live, the deploy Lambda rolls {names.endpoint} back to the newest approved one.")
    print(f"Follow it with: dogbreeds models deploy-log --env {names.env} --follow")
