"""`dogbreeds local models promote VERSION --from dev --to prod`: promotion in local mode.

The same gates as on AWS (dogbreeds/promotion.py), fed by local mode's own record of the source
environment:

* live, and since when: local mode serves the newest Approved version of a group, so the version
  is live from the moment it last became that (replayed from the registry's status histories);
* alarms: the source's gate alarms as the last ``dogbreeds local monitor`` evaluated them, their
  states in ``<workdir>/monitoring/alarm_states.json`` and changes in ``alarm_history.jsonl``
  (DescribeAlarmHistory's items), and the run they come from (``last_run.json``);
* live accuracy: the model-quality monitor's ``Accuracy`` and ``LabelledRecords`` in
  ``<workdir>/monitoring/metrics.jsonl`` (PutMetricData requests), namespace ``<project>/<source>``.

The copy goes into the target bucket's folder under local S3 (``promoted/<source>/v<N>/``), and
the version into the target's group of the same local registry, with the same lineage metadata
and a gates.json beside the copies. Local mode has no cross-environment grants, so any
environment with a registry may be named with ``--from`` (the target's configured source is the
default); the gates are the target's.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from dogbreeds.promotion import (
    LINEAGE_KEYS,
    PROMOTED_FROM_ARN,
    Evidence,
    PromotionError,
    accuracy_points,
    copy_plan,
    evaluate_gates,
    gate_summary,
    gates_document,
    iso,
    metadata_value,
    package_uris,
    parse_time,
    print_gates,
    rewrite_uris,
)

EXIT_REFUSED = 1
LOCAL_CALLER = "local operator"


def promote(
    workdir: Path,
    version: int,
    source_env: str | None,
    target_env: str,
    reason: str,
    force: bool,
    cdk_json: Path | None,
    now: datetime,
) -> int:
    from dogbreeds.cloud_assembly import DEFAULT_LOCAL_REGION, LOCAL_ACCOUNT
    from dogbreeds.environment import CommandError, resolve_environment
    from dogbreeds.local_registry import LocalModelRegistry

    if force and not reason.strip():
        raise CommandError(
            "--force needs --reason TEXT: an override of the gates is recorded with its reason"
        )
    target_names, target = resolve_environment(target_env, cdk_json)
    if target.promotion is None:
        raise CommandError(
            f"{target_env} receives no promoted models: its cdk.json block has no promotion section"
        )
    source_env = source_env or target.promotion.source
    if source_env == target_env:
        raise CommandError("an environment cannot promote from itself")
    source_names, source = resolve_environment(source_env, cdk_json)
    if source_env != target.promotion.source:
        print(f"note: {target_env} promotes from {target.promotion.source} on AWS; local mode lets "
              f"you promote from {source_env} (the gates are {target_env}'s)")  # fmt: skip
    registry = LocalModelRegistry(workdir)
    package = registry.get(version, source_names.model_package_group)
    source_arn = package["arn"]
    for existing in registry.packages(target_names.model_package_group):
        if (existing.get("customer_metadata_properties") or {}).get(PROMOTED_FROM_ARN) == source_arn:
            print(f"already promoted: {target_names.model_package_group} version {existing['version']} "
                  f"({existing['approval_status']}) is {source_arn}; nothing to do")  # fmt: skip
            return 0

    print(f"promoting {source_names.model_package_group} version {version} -> "
          f"{target_names.model_package_group}")  # fmt: skip
    evidence = local_evidence(workdir, registry, source_names, source, version, now)
    gates = evaluate_gates(evidence, target.promotion, target.monitoring.accuracy_threshold)
    print(f"gates ({source_env}'s local record of version {version}):")
    print_gates(gates)
    passed = all(g.passed for g in gates)
    if not passed and not force:
        print(f"refused: {gate_summary(gates, False)}. Override with --force --reason TEXT", file=sys.stderr)
        return EXIT_REFUSED

    from dogbreeds.local_executor.executor import local_s3_root
    from dogbreeds.local_executor.s3_mapping import LocalS3

    s3 = LocalS3(local_s3_root(workdir))
    bucket = target_names.bucket(LOCAL_ACCOUNT, target.region or DEFAULT_LOCAL_REGION)
    prefix = target_names.promoted_prefix(source_env, version)
    described = {
        "InferenceSpecification": package.get("inference_specification") or {},
        "ModelMetrics": package.get("model_metrics") or {},
        "DriftCheckBaselines": package.get("drift_check_baselines") or {},
        "CustomerMetadataProperties": package.get("customer_metadata_properties") or {},
    }
    if not described["InferenceSpecification"].get("Containers"):
        described["InferenceSpecification"] = {"Containers": [{"ModelDataUrl": package["model_data_url"]}]}
    plan = copy_plan(package_uris(described), bucket, prefix)
    copies: dict[str, str] = {}
    for source_uri, target_uri in plan.items():
        source_path, target_path = s3.path_for(source_uri), s3.path_for(target_uri)
        if not source_path.exists():
            raise PromotionError(f"{source_uri} is not in local S3 ({source_path})")
        if source_path.is_dir():
            shutil.copytree(source_path, target_path, dirs_exist_ok=True)
        else:
            target_path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source_path, target_path)
        copies[source_uri] = target_uri
        print(f"  copied {source_uri} -> {target_uri}")
    metadata = package.get("customer_metadata_properties") or {}
    lineage = _lineage(workdir, package, metadata)
    gates_uri = f"s3://{bucket}/{prefix}/gates.json"
    document = gates_document(
        gates, evidence=evidence, forced=not passed, reason=reason, promoted_by=LOCAL_CALLER,
        source_arn=source_arn, copies=copies,
    )  # fmt: skip
    document["lineage"] = lineage
    gates_path = s3.path_for(gates_uri)
    gates_path.parent.mkdir(parents=True, exist_ok=True)
    gates_path.write_text(json.dumps(document, indent=2) + "\n")
    print(f"  wrote {gates_uri}")

    status = "Approved" if target.promotion.approve and passed else "PendingManualApproval"
    lineage_metadata = {
        "PromotedFromEnvironment": source_env,
        PROMOTED_FROM_ARN: source_arn,
        "PromotedFromVersion": str(version),
        "TrainingExecutionArn": lineage.get("training_execution") or "unknown",
        "DatasetS3Uri": lineage.get("dataset") or "unknown",
        "PromotedBy": LOCAL_CALLER,
        "PromotedAt": iso(now),
        "PromotionReason": reason or "-",
        "PromotionGates": gate_summary(gates, force),
        "PromotionGatesUri": gates_uri,
    }
    kept = {k: v for k, v in metadata.items() if k not in LINEAGE_KEYS}
    specification = rewrite_uris(described["InferenceSpecification"], plan)
    created = registry.register(
        group=target_names.model_package_group,
        model_data_url=specification["Containers"][0]["ModelDataUrl"],
        approval_status=status,
        model_metrics=rewrite_uris(described["ModelMetrics"], plan),
        drift_check_baselines=rewrite_uris(described["DriftCheckBaselines"], plan),
        inference_specification=specification,
        customer_metadata_properties={
            **{k: metadata_value(v) for k, v in rewrite_uris(kept, plan).items()},
            **{k: metadata_value(v) for k, v in lineage_metadata.items()},
        },
        source={"promoted_from": source_arn, **(package.get("source") or {})},
        description=f"Promoted from {source_env}: {source_arn}",
    )
    print(f"registered {target_names.model_package_group} version {created['version']}: {status}")
    return 0


def _lineage(workdir: Path, package: Mapping[str, Any], metadata: Mapping[str, Any]) -> dict[str, Any]:
    from dogbreeds.local_registry import execution_of

    if metadata.get(PROMOTED_FROM_ARN):
        return {
            "training_execution": metadata.get("TrainingExecutionArn"),
            "dataset": metadata.get("DatasetS3Uri"),
        }
    execution = execution_of(package, workdir) or {}
    execution_id = (package.get("source") or {}).get("pipeline_execution_id")
    return {
        "training_execution": str(execution_id) if execution_id else None,
        "dataset": (execution.get("parameters") or {}).get("DatasetS3Uri"),
    }


def live_since(packages: Sequence[Mapping[str, Any]], version: int) -> datetime | None:
    """When ``version`` last became the newest Approved version of its group (local mode serves
    that one), replaying every status change of the group in time order; None if it is not live."""
    # Within a second, a version's own history keeps its order (index).
    events = sorted(
        (parse_time(entry["at"]), package["version"], index, entry["status"])
        for package in packages
        for index, entry in enumerate(package.get("status_history") or [])
        if entry.get("at")
    )
    statuses: dict[int, str] = {}
    live, since = None, None
    for at, changed, _, status in events:
        statuses[changed] = status
        approved = [v for v, s in statuses.items() if s == "Approved"]
        now_live = max(approved) if approved else None
        if now_live != live:
            live, since = now_live, at
    return since if live == version else None


def local_evidence(
    workdir: Path, registry: Any, names: Any, settings: Any, version: int, now: datetime
) -> Evidence:
    from contract import monitoring_metrics as mm
    from contract.promotion_gates import gate_alarm_names
    from dogbreeds.local_alarms import HISTORY_FILE, STATES_FILE, read_metrics_sink
    from dogbreeds.local_monitor import LAST_RUN_FILE
    from dogbreeds.local_registry import live_package

    group = names.model_package_group
    live = live_package(registry, group)
    packages = registry.packages(group)
    since = live_since(packages, version)
    monitoring = workdir / "monitoring"
    states_path = monitoring / STATES_FILE
    states = json.loads(states_path.read_text()) if states_path.is_file() else {}
    history_path = monitoring / HISTORY_FILE
    history = (
        [json.loads(line) for line in history_path.read_text().splitlines() if line.strip()]
        if history_path.is_file()
        else []
    )
    last_run_path = monitoring / LAST_RUN_FILE
    last_run = json.loads(last_run_path.read_text()) if last_run_path.is_file() else {}
    data = read_metrics_sink(monitoring / "metrics.jsonl")
    wanted = {(mm.DIMENSION_ENDPOINT, names.endpoint), (mm.DIMENSION_MONITOR, mm.MONITOR_MODEL_QUALITY)}

    def series(metric: str) -> list[tuple[datetime, float]]:
        return [
            (d.timestamp, d.value)
            for d in data
            if d.namespace == names.metric_namespace and d.name == metric and set(d.dimensions) == wanted
        ]

    run = (
        f"last local monitor run {last_run.get('execution_id')} ({last_run.get('status')})"
        if last_run
        else "no local monitor run yet"
    )
    return Evidence(
        environment=names.env,
        version=version,
        now=now,
        live_version=live["version"] if live else None,
        live_since=since,
        live_since_from="the local registry's approval history",
        alarm_names=gate_alarm_names(names, settings),
        alarm_history=history,
        current_states={name: entry.get("state", "") for name, entry in states.items()},
        accuracy=accuracy_points(series(mm.ACCURACY), series(mm.LABELLED_RECORDS)),
        accuracy_from=f"{monitoring / 'metrics.jsonl'}; {run}",
    )
