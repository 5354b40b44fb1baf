"""`dogbreeds models list|approve|reject --env NAME [VERSION]`: the model registry of an AWS environment.

Approving a version is the deployment: the environment's EventBridge rule hands the decision to the
deploy Lambda, which rolls the version out to the endpoint (blue/green canary, alarms roll it back).
Rejecting the live version rolls the endpoint back to the newest approved version that remains.
Names (package group, endpoint, config prefix) come from cdk.json through stacks.settings and
stacks.naming, the same way the stacks get them.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from dogbreeds.environment import CommandError, resolve_environment
from stacks.naming import Names

DECISIONS = {"approve": "Approved", "reject": "Rejected"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "models", help="list, approve or reject model versions in an AWS environment's registry"
    )
    actions = parser.add_subparsers(dest="models_command", metavar="ACTION")

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--env", required=True, help="environment name from cdk.json (dev, staging, prod)")
        sub.add_argument(
            "--cdk-json", type=Path, default=None,
            help="cdk.json to read names from (default: ./cdk.json, else the project's)",
        )

    list_parser = actions.add_parser("list", help="versions, their approval status, and which one is live")
    common(list_parser)
    list_parser.set_defaults(func=_run)
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
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def _run(args: argparse.Namespace) -> int:
    try:
        names, region = _environment(args.env, args.cdk_json)
        registry = Registry(names, region)
        if args.models_command == "list":
            _print_versions(registry.versions(), registry.live_version(), names)
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

    def __init__(self, names: Names, region: str | None) -> None:
        import boto3

        self.names = names
        self.sagemaker = boto3.client("sagemaker", region_name=region)

    def versions(self) -> list[dict[str, Any]]:
        summaries: list[dict[str, Any]] = []
        paginator = self.sagemaker.get_paginator("list_model_packages")
        for page in paginator.paginate(ModelPackageGroupName=self.names.model_package_group):
            summaries.extend(page["ModelPackageSummaryList"])
        return sorted(summaries, key=lambda s: s["ModelPackageVersion"])

    def live_version(self) -> int | None:
        from botocore.exceptions import ClientError

        try:
            endpoint = self.sagemaker.describe_endpoint(EndpointName=self.names.endpoint)
        except ClientError as error:
            if "Could not find" in error.response.get("Error", {}).get("Message", ""):
                return None
            raise
        return live_version_of(self.names, endpoint["EndpointConfigName"])

    def decide(self, arn: str, status: str, description: str | None) -> None:
        request = {"ModelPackageArn": arn, "ModelApprovalStatus": status}
        if description:
            request["ApprovalDescription"] = description
        self.sagemaker.update_model_package(**request)


def live_version_of(names: Names, endpoint_config_name: str) -> int | None:
    """The version in a config name the deploy Lambda made (``<prefix>-v<version>-<8 hex>``, see
    lambdas/deploy_endpoint/deploy_names.py); None for a config it did not make."""
    pattern = rf"{re.escape(names.endpoint_config_prefix)}-v([0-9]+)-[0-9a-f]{{8}}"
    match = re.fullmatch(pattern, endpoint_config_name)
    return int(match.group(1)) if match else None


def _print_versions(versions: list[dict[str, Any]], live: int | None, names: Names) -> None:
    if not versions:
        print(f"No versions registered in {names.model_package_group} yet (run the training pipeline).")
        return
    print(f"{'VERSION':>7}  {'STATUS':<22}  {'CREATED':<20}  LIVE")
    for summary in versions:
        version = summary["ModelPackageVersion"]
        created = summary["CreationTime"].strftime("%Y-%m-%d %H:%M:%S")
        marker = f"live on {names.endpoint}" if version == live else ""
        print(f"{version:>7}  {summary.get('ModelApprovalStatus', ''):<22}  {created:<20}  {marker}".rstrip())
    if live is None:
        print(f"\nNo version is live: {names.endpoint} does not exist yet. Approve a version to create it.")


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
    print(f"Follow it with: aws logs tail /aws/lambda/{names.deploy_function} --follow")
