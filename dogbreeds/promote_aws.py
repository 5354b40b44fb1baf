"""`dogbreeds models promote VERSION --from SOURCE --to TARGET [--reason TEXT] [--force]` on AWS.

Creates a version in the target's model package group that is the same model as the source's
version: its model, metrics and baselines copied into the target bucket (under the target key,
``promoted/<source>/v<version>/``), the same image and container environment, the metrics and
drift baselines pointing at the copies, and its lineage in CustomerMetadataProperties. The gates
(dogbreeds/promotion.py) judge the source's record first; ``--force --reason`` overrides them and
the override is recorded. Promoting the same source version again finds the earlier copy (by the
``PromotedFromPackageArn`` metadata) and changes nothing.

Credentials are the caller's, in the target account (the target's ``<target>-promotion`` role is
made for this). In another account, the source's registry and evidence are read as the source's
``<source>-evidence-for-<target>`` role, and the objects are copied server-side under the
source's bucket and key policies (stacks/constructs/promotion_access.py).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from contract import monitoring_metrics as mm
from contract.naming import Names
from contract.settings import EnvironmentSettings, cross_account
from dogbreeds.environment import CommandError, resolve_environment
from dogbreeds.promotion import (
    LINEAGE_KEYS,
    PROMOTED_FROM_ARN,
    AccuracyPoint,
    Evidence,
    PromotionError,
    accuracy_points,
    client_token,
    copy_plan,
    evaluate_gates,
    gate_summary,
    gates_document,
    iso,
    metadata_value,
    package_uris,
    print_gates,
    rewrite_uris,
    split_s3,
)

PENDING, APPROVED = "PendingManualApproval", "Approved"
# Fields of the source's answer that describe its own objects, not the copies.
DROPPED = ("ModelDataETag",)
EXIT_REFUSED = 1


def _target_settings(
    source_env: str, target_env: str, cdk_json: Any
) -> tuple[Names, EnvironmentSettings, Names, EnvironmentSettings]:
    target_names, target = resolve_environment(target_env, cdk_json)
    if target.promotion is None:
        raise CommandError(
            f"{target_env} receives no promoted models: its cdk.json block has no promotion section"
        )
    if target.promotion.source != source_env:
        raise CommandError(
            f"{target_env} promotes from {target.promotion.source}, not {source_env} "
            f"(environments.{target_env}.promotion.source; the grants and gates are set up per pair)"
        )
    source_names, source = resolve_environment(source_env, cdk_json)
    return source_names, source, target_names, target


def promote(
    *,
    version: int,
    source_env: str,
    target_env: str,
    reason: str,
    force: bool,
    cdk_json: Any = None,
    now: datetime | None = None,
) -> int:
    import boto3

    if force and not reason.strip():
        raise CommandError(
            "--force needs --reason TEXT: an override of the gates is recorded with its reason"
        )
    source_names, source, target_names, target = _target_settings(source_env, target_env, cdk_json)
    assert target.promotion is not None
    region = target.region or boto3.session.Session().region_name
    if not region:
        raise CommandError("no AWS region: set AWS_REGION or pin the environment's region in cdk.json")
    target_session = boto3.session.Session(region_name=region)
    sts = target_session.client("sts")
    caller = sts.get_caller_identity()
    if target.account and target.account != caller["Account"]:
        raise CommandError(
            f"the credentials are for account {caller['Account']}, but {target_env} is pinned to account "
            f"{target.account}: run as {target_names.promotion_role} there"
        )
    target_account = target.account or caller["Account"]
    source_account = source.account if cross_account(target, source) else target_account
    print(f"promoting {source_names.model_package_group} version {version} "
          f"({source_env}, account {source_account}) -> {target_names.model_package_group} "
          f"({target_env}, account {target_account}), as {caller['Arn']}")  # fmt: skip

    if source_account != target_account:
        role = f"arn:aws:iam::{source_account}:role/{source_names.promotion_evidence_role(target_env)}"
        print(f"  reading {source_env} as {role}")
        credentials = sts.assume_role(RoleArn=role, RoleSessionName=f"promote-to-{target_env}")["Credentials"]
        source_session = boto3.session.Session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
            region_name=region,
        )
    else:
        source_session = target_session
    source_sm = source_session.client("sagemaker")
    target_sm = target_session.client("sagemaker")
    s3 = target_session.client("s3")

    _require_group(target_sm, target_names, target_env)
    package = _source_package(source_sm, source_names, version)
    source_arn = package["ModelPackageArn"]

    earlier = _promoted_before(target_sm, target_names, source_arn)
    if earlier is not None:
        print(
            f"already promoted: {target_names.model_package_group} version {earlier['ModelPackageVersion']} "
            f"({earlier.get('ModelApprovalStatus')}) is {source_arn}; nothing to do"
        )
        return 0

    evidence = collect_evidence(source_session, source_names, source, version, now or datetime.now(UTC))
    gates = evaluate_gates(evidence, target.promotion, target.monitoring.accuracy_threshold)
    print(f"gates ({source_env}'s record of version {version}):")
    print_gates(gates)
    passed = all(g.passed for g in gates)
    if not passed and not force:
        print(
            f"refused: {gate_summary(gates, False)}. Fix the cause, wait, or override with "
            "--force --reason TEXT (recorded with the version)",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    if not passed:
        print(f"  forced past the failing gates: {reason}")

    bucket = target_names.bucket(target_account, region)
    prefix = target_names.promoted_prefix(source_env, version)
    plan = copy_plan(package_uris(package), bucket, prefix)
    copies = _copy(s3, plan)
    lineage = _lineage(source_session, source_names, source, package, source_env, version)
    who = caller["Arn"]
    gates_uri = f"s3://{bucket}/{prefix}/gates.json"
    document = gates_document(
        gates, evidence=evidence, forced=not passed, reason=reason, promoted_by=who,
        source_arn=source_arn, copies=copies,
    )  # fmt: skip
    document["lineage"] = lineage
    s3.put_object(
        Bucket=bucket, Key=f"{prefix}/gates.json", Body=json.dumps(document, indent=2).encode(),
        ContentType="application/json",
    )  # fmt: skip
    print(f"  wrote {gates_uri}")

    status = APPROVED if target.promotion.approve and passed else PENDING
    request = promoted_request(
        package, plan, target_names, status=status,
        metadata={
            "PromotedFromEnvironment": source_env,
            PROMOTED_FROM_ARN: source_arn,
            "PromotedFromVersion": str(version),
            "TrainingExecutionArn": lineage.get("training_execution") or "unknown",
            "DatasetS3Uri": lineage.get("dataset") or "unknown",
            "PromotedBy": who,
            "PromotedAt": iso(evidence.now),
            "PromotionReason": reason or "-",
            "PromotionGates": gate_summary(gates, force),
            "PromotionGatesUri": gates_uri,
        },
        service_model=target_sm.meta.service_model,
    )  # fmt: skip
    created = target_sm.create_model_package(**request)["ModelPackageArn"]
    new_version = created.rsplit("/", 1)[-1]
    print(f"registered {target_names.model_package_group} version {new_version}: {status}")
    if status == APPROVED:
        print(f"the deploy Lambda rolls it out to {target_names.endpoint} (canary, alarms roll back); "
              f"follow it with: dogbreeds models deploy-log --env {target_env} --follow")  # fmt: skip
    else:
        print(f"approve it to deploy: dogbreeds models approve --env {target_env} {new_version}")
    return 0


def _require_group(sagemaker: Any, names: Names, env: str) -> None:
    from botocore.exceptions import ClientError

    try:
        sagemaker.describe_model_package_group(ModelPackageGroupName=names.model_package_group)
    except ClientError as error:
        message = error.response.get("Error", {}).get("Message", "")
        if (
            error.response.get("Error", {}).get("Code") == "ValidationException"
            or "does not exist" in message
        ):
            raise PromotionError(
                f"the target's model package group {names.model_package_group} does not exist: deploy "
                f"{env}'s stacks first (npx cdk deploy --all -c env={env})"
            ) from None
        raise


def _versions(sagemaker: Any, group: str) -> list[dict[str, Any]]:
    summaries: list[dict[str, Any]] = []
    for page in sagemaker.get_paginator("list_model_packages").paginate(ModelPackageGroupName=group):
        summaries.extend(page["ModelPackageSummaryList"])
    return sorted(summaries, key=lambda s: s["ModelPackageVersion"])


def _source_package(sagemaker: Any, names: Names, version: int) -> dict[str, Any]:
    summaries = {s["ModelPackageVersion"]: s for s in _versions(sagemaker, names.model_package_group)}
    if version not in summaries:
        known = ", ".join(str(v) for v in sorted(summaries)) or "none"
        raise PromotionError(
            f"version {version} is not in {names.model_package_group}; registered versions: {known}"
        )
    return sagemaker.describe_model_package(ModelPackageName=summaries[version]["ModelPackageArn"])


def _promoted_before(sagemaker: Any, names: Names, source_arn: str) -> dict[str, Any] | None:
    """The target version whose lineage names ``source_arn``, newest first; None if none."""
    for summary in reversed(_versions(sagemaker, names.model_package_group)):
        package = sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
        if (package.get("CustomerMetadataProperties") or {}).get(PROMOTED_FROM_ARN) == source_arn:
            return package
    return None


def collect_evidence(
    session: Any, names: Names, settings: EnvironmentSettings, version: int, now: datetime
) -> Evidence:
    """The source's record: which version its endpoint serves and since when (the creation time
    of the endpoint config it serves: the deploy Lambda makes one per deployment), the history
    and states of its gate alarms, and the model-quality monitor's accuracy metrics."""
    from botocore.exceptions import ClientError

    from contract.promotion_gates import gate_alarm_names
    from dogbreeds.aws_model_registry import Registry

    registry = Registry(names, session.region_name, session=session)
    live_version = registry.live_version()
    live_since, since_from = None, "no endpoint"
    if live_version is not None:
        try:
            endpoint = registry.sagemaker.describe_endpoint(EndpointName=names.endpoint)
            config = registry.sagemaker.describe_endpoint_config(
                EndpointConfigName=endpoint["EndpointConfigName"]
            )
            live_since = config["CreationTime"]
            since_from = f"creation of endpoint config {config['EndpointConfigName']}"
        except ClientError:
            since_from = "endpoint config gone"
    cloudwatch = session.client("cloudwatch")
    alarms = list(gate_alarm_names(names, settings))
    states = {}
    for page in cloudwatch.get_paginator("describe_alarms").paginate(AlarmNames=alarms):
        states.update({a["AlarmName"]: a["StateValue"] for a in page.get("MetricAlarms", [])})
    history: list[dict[str, Any]] = []
    # Everything CloudWatch still has (two weeks): the state before the window needs older items.
    for name in alarms:
        if name not in states:
            continue
        for page in cloudwatch.get_paginator("describe_alarm_history").paginate(
            AlarmName=name, HistoryItemType="StateUpdate",
            StartDate=now - timedelta(days=14), EndDate=now,
        ):  # fmt: skip
            history.extend(page.get("AlarmHistoryItems", []))
    evidence = Evidence(
        environment=names.env, version=version, now=now, live_version=live_version,
        live_since=live_since, live_since_from=since_from, alarm_names=alarms,
        alarm_history=history, current_states=states,
    )  # fmt: skip
    if settings.monitoring.enabled:
        evidence.accuracy, evidence.accuracy_from = _accuracy(cloudwatch, names, evidence, now)
    return evidence


def _accuracy(
    cloudwatch: Any, names: Names, evidence: Evidence, now: datetime
) -> tuple[list[AccuracyPoint], str]:
    start = evidence.live_since or now - timedelta(days=14)
    start = min(start, now - timedelta(hours=1))
    dimensions = [
        {"Name": mm.DIMENSION_ENDPOINT, "Value": names.endpoint},
        {"Name": mm.DIMENSION_MONITOR, "Value": mm.MONITOR_MODEL_QUALITY},
    ]

    def series(metric: str, statistic: str) -> list[tuple[datetime, float]]:
        answer = cloudwatch.get_metric_statistics(
            Namespace=names.metric_namespace, MetricName=metric, Dimensions=dimensions,
            StartTime=start - timedelta(hours=1), EndTime=now, Period=3600, Statistics=[statistic],
        )  # fmt: skip
        return [(p["Timestamp"], float(p[statistic])) for p in answer.get("Datapoints", [])]

    points = accuracy_points(series(mm.ACCURACY, "Average"), series(mm.LABELLED_RECORDS, "Sum"))
    return points, f"{names.metric_namespace} {mm.ACCURACY}/{mm.LABELLED_RECORDS}, hourly"


def _copy(s3: Any, plan: dict[str, str]) -> dict[str, str]:
    """Server-side copies (the target bucket's default encryption: the target key); a prefix is
    copied object by object. Returns source URI -> copy URI for every object."""
    copies: dict[str, str] = {}
    for source_uri, target_uri in plan.items():
        source_bucket, source_key = split_s3(source_uri)
        target_bucket, target_key = split_s3(target_uri)
        if source_uri.endswith("/"):
            pairs = []
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=source_bucket, Prefix=source_key):
                for item in page.get("Contents", []):
                    pairs.append((item["Key"], target_key + item["Key"][len(source_key) :]))
        else:
            pairs = [(source_key, target_key)]
        for key, destination in pairs:
            s3.copy({"Bucket": source_bucket, "Key": key}, target_bucket, destination)
            copies[f"s3://{source_bucket}/{key}"] = f"s3://{target_bucket}/{destination}"
            print(f"  copied s3://{source_bucket}/{key} -> s3://{target_bucket}/{destination}")
    return copies


def _lineage(
    session: Any, names: Names, settings: EnvironmentSettings, package: dict[str, Any], env: str, version: int
) -> dict[str, str | None]:
    """The training execution and dataset behind the version: its own metadata when it was itself
    promoted, else the pipeline execution that registered it and that execution's DatasetS3Uri."""
    from dogbreeds.aws_model_registry import Registry, pipeline_execution_of

    metadata = package.get("CustomerMetadataProperties") or {}
    if metadata.get(PROMOTED_FROM_ARN):
        return {
            "training_execution": metadata.get("TrainingExecutionArn"),
            "dataset": metadata.get("DatasetS3Uri"),
            "promoted_through": f"{metadata.get('PromotedFromEnvironment')} -> {env}",
        }
    parameters = None
    if settings.training.enabled:
        parameters = Registry(names, session.region_name, session=session).execution_parameters(package)
    return {
        "training_execution": pipeline_execution_of(package),
        "dataset": (parameters or {}).get("DatasetS3Uri"),
    }


def promoted_request(
    package: dict[str, Any],
    plan: dict[str, str],
    target: Names,
    *,
    status: str,
    metadata: dict[str, str],
    service_model: Any,
) -> dict[str, Any]:
    """CreateModelPackage's request for the copy: the source's answer with URIs rewritten, kept
    to what CreateModelPackage accepts (its input shape decides), plus lineage and status."""
    shape = service_model.operation_model("CreateModelPackage").input_shape
    source_metadata = {
        k: v for k, v in (package.get("CustomerMetadataProperties") or {}).items() if k not in LINEAGE_KEYS
    }
    request = {
        "ModelPackageGroupName": target.model_package_group,
        "ModelPackageDescription": (
            f"Promoted from {metadata['PromotedFromEnvironment']}: {metadata[PROMOTED_FROM_ARN]}"
        ),
        "ModelApprovalStatus": status,
        "ClientToken": client_token(metadata[PROMOTED_FROM_ARN], target.model_package_group),
        "CustomerMetadataProperties": {
            **{k: metadata_value(v) for k, v in rewrite_uris(source_metadata, plan).items()},
            **{k: metadata_value(v) for k, v in metadata.items()},
        },
    }
    for name in ("InferenceSpecification", "ModelMetrics", "DriftCheckBaselines", "MetadataProperties",
                 "Domain", "Task", "SamplePayloadUrl"):  # fmt: skip
        if package.get(name):
            request[name] = _conform(rewrite_uris(package[name], plan), shape.members[name])
    return request


def _conform(value: Any, shape: Any) -> Any:
    """``value`` without members ``shape`` does not have (DescribeModelPackage answers with fields
    CreateModelPackage refuses, such as a container's ModelDataETag or ImageDigest)."""
    if shape.type_name == "structure" and isinstance(value, dict):
        return {
            k: _conform(v, shape.members[k])
            for k, v in value.items()
            if k in shape.members and k not in DROPPED
        }
    if shape.type_name == "list" and isinstance(value, list):
        return [_conform(v, shape.member) for v in value]
    return value
