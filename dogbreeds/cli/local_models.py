"""`dogbreeds local models list|show|approve|reject [VERSION]` and `promote`: the local model registry.

The registry is dogbreeds/local_registry.py, promotion in local mode dogbreeds/local_promotion.py;
this module parses and prints.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dogbreeds.environment import CommandError
from dogbreeds.local_promotion import promote
from dogbreeds.local_registry import (
    DEFAULT_WORKDIR,
    LocalModelRegistry,
    RegistryError,
    execution_of,
    live_package,
    metrics_of_package,
    serve_location,
)
from dogbreeds.promotion import PromotionError, parse_time


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "models", help="list, show, approve or reject model versions in the local registry"
    )
    actions = parser.add_subparsers(dest="models_action", metavar="ACTION")
    for action, help_text in (
        ("list", "every version with its status, metrics, threshold, and which one is live"),
        ("show", "one version: metrics against the live one, baselines, source execution, history"),
        ("approve", "approve a version (default: the newest)"),
        ("reject", "reject a version (default: the newest)"),
    ):
        sub = actions.add_parser(action, help=help_text)
        sub.add_argument(
            "--workdir", default=DEFAULT_WORKDIR, help="local mode's working folder (default: %(default)s)"
        )
        sub.add_argument(
            "--group", default=None, help="model package group (needed only when there are several)"
        )
        if action == "show":
            sub.add_argument("version", type=int, help="version number (see `local models list`)")
        elif action != "list":
            sub.add_argument("version", nargs="?", type=int, help="version number (default: the newest)")
            sub.add_argument("--reason", default="", help="why, kept in the version's status history")
        sub.set_defaults(func=_run_models)
    _add_promote_parser(actions, DEFAULT_WORKDIR)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def _run_models(args: argparse.Namespace) -> int:
    registry = LocalModelRegistry(args.workdir)
    try:
        if args.models_action == "list":
            packages = registry.packages(args.group)
            if not packages:
                print(f"no model packages in {registry.path}")
                return 0
            for group in sorted({p["group"] for p in packages}):
                _print_list(registry, group, [p for p in packages if p["group"] == group], args.workdir)
            return 0
        if args.models_action == "show":
            _print_show(registry, registry.get(args.version, args.group), args.workdir)
            return 0
        status = "Approved" if args.models_action == "approve" else "Rejected"
        package = registry.set_status(args.version, status, args.group, args.reason)
    except RegistryError as error:
        print(f"error: {error}")
        return 1
    print(f"{package['group']} version {package['version']}: {package['approval_status']}")
    return 0


def _threshold(execution: Mapping[str, Any] | None) -> str:
    value = ((execution or {}).get("parameters") or {}).get("AccuracyThreshold")
    return "n/a" if value is None else str(value)


def _print_list(
    registry: LocalModelRegistry, group: str, packages: list[dict[str, Any]], workdir: Path | str
) -> None:
    from dogbreeds.model_evidence import metric_columns, metric_header, newer_marker

    live = live_package(registry, group)
    live_version = live["version"] if live else None
    print(f"group {group}")
    print(f"{'VERSION':>7}  {'STATUS':<22} {'CREATED':<26} {metric_header()}  {'THRESHOLD':>9}  "
          f"{'LIVE':<15}  SERVE")  # fmt: skip
    for package in packages:
        metrics = metrics_of_package(package, workdir)
        marker = newer_marker(package["version"], live_version, package["approval_status"])
        print(
            f"{package['version']:>7}  {package['approval_status']:<22} {package['created_at']:<26} "
            f"{metric_columns(metrics)}  {_threshold(execution_of(package, workdir)):>9}  {marker:<15}  "
            f"{serve_location(package, workdir)}"
        )
    if live is None:
        print("No version is live: local mode serves the newest Approved version, and none is approved yet.")


def _print_show(registry: LocalModelRegistry, package: dict[str, Any], workdir: Path | str) -> None:
    from dogbreeds.model_evidence import comparison_lines

    group, version = package["group"], package["version"]
    live = live_package(registry, group)
    execution = execution_of(package, workdir)
    print(f"{group} version {version}: {package['approval_status']}")
    print(f"model: {package['model_data_url']}")
    archive = serve_location(package, workdir).split(None, 2)[2]
    print(f"serve: dogbreeds local serve --version {version}  (or --model {archive})")
    if live is None:
        live_label, live_metrics = None, None
        print("live: none (no Approved version)")
    elif live["version"] == version:
        live_label, live_metrics = None, None
        print("live: this version")
    else:
        live_label, live_metrics = f"live v{live['version']}", metrics_of_package(live, workdir)
        print(f"live: version {live['version']}")
    print(f"metrics (from {package.get('metrics_uris', {}).get('ModelQuality.Statistics', 'n/a')}):")
    for line in comparison_lines(metrics_of_package(package, workdir), live_metrics, live_label):
        print(line)
    print(f"  threshold passed {_threshold(execution)}")
    print("baselines:")
    for name, uri in sorted((package.get("baseline_uris") or {}).items()) or [("none", "")]:
        print(f"  {name:<30} {uri}".rstrip())
    source = package.get("source") or {}
    parameters = (execution or {}).get("parameters") or {}
    print(
        f"training execution: {source.get('pipeline_execution_id') or 'unknown'}"
        + ("" if execution or not source.get("pipeline_execution_id") else " (its execution.json is gone)")
    )
    print(f"dataset: {parameters.get('DatasetS3Uri') or 'unknown'}")
    print("approval history:")
    for entry in package.get("status_history") or []:
        reason = f"  ({entry['reason']})" if entry.get("reason") else ""
        print(f"  {entry.get('at', '?'):<26} {entry.get('status', '?')}{reason}")


def _add_promote_parser(actions: argparse._SubParsersAction, workdir_default: str) -> None:
    sub = actions.add_parser(
        "promote",
        help="copy a version of one environment's group into another's, gated on its local record",
    )
    sub.add_argument("version", type=int, help="the source's version number")
    sub.add_argument("--from", dest="source", default=None, help="source environment (default: the "
                     "target's promotion.source)")  # fmt: skip
    sub.add_argument("--to", dest="target", required=True, help="target environment")
    sub.add_argument("--reason", default="", help="why; recorded with the promoted version")
    sub.add_argument("--force", action="store_true", help="promote although gates fail (needs --reason)")
    sub.add_argument("--workdir", default=workdir_default, help="local mode's working folder")
    sub.add_argument("--cdk-json", type=Path, default=None, help="cdk.json to read settings from")
    sub.add_argument("--now", default=None, help=argparse.SUPPRESS)  # tests: judge as of this time
    sub.set_defaults(func=_run_promote)


def _run_promote(args: argparse.Namespace) -> int:
    try:
        now = parse_time(args.now) if args.now else datetime.now(UTC)
        return promote(
            Path(args.workdir), args.version, args.source, args.target, args.reason, args.force,
            args.cdk_json, now,
        )  # fmt: skip
    except (CommandError, PromotionError, RegistryError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
