"""`dogbreeds models deploy-log` and `models teardown-endpoint`: the deploy Lambda's side of an environment.

`deploy-log` prints the deploy Lambda's CloudWatch log events (``/aws/lambda/<Names.deploy_function>``),
polling with ``--follow`` until Ctrl-C. `teardown-endpoint` deletes what the Lambda created outside
CloudFormation: the endpoint (``Names.endpoint``), then the endpoint configs and models named with the
Lambda's prefixes (``Names.endpoint_config_prefix`` / ``Names.model_prefix``, see
stacks/functions/deploy_endpoint/code/deploy_names.py), so `cdk destroy` can remove the rest.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from contract.naming import Names

FOLLOW_INTERVAL_S = 5.0


def log_group(names: Names) -> str:
    return f"/aws/lambda/{names.deploy_function}"


def format_event(event: dict[str, Any]) -> str:
    stamp = datetime.fromtimestamp(event["timestamp"] / 1000, tz=UTC)
    return f"{stamp.strftime('%Y-%m-%dT%H:%M:%SZ')} {event['message'].rstrip()}"


def print_deploy_log(
    names: Names,
    region: str | None,
    since_minutes: float,
    follow: bool,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    import boto3

    logs = boto3.client("logs", region_name=region)
    group = log_group(names)
    start = int((time.time() - since_minutes * 60) * 1000)
    seen: set[str] = set()
    announced = False
    while True:
        events = _events(logs, group, start)
        if events is None:
            if not follow:
                print(f"No log group {group} yet: the deploy Lambda has not run "
                      "(approve a version with `dogbreeds models approve`).", file=sys.stderr)  # fmt: skip
                return 1
            if not announced:
                print(f"Waiting for {group} (the deploy Lambda has not run yet); Ctrl-C to stop.",
                      file=sys.stderr)  # fmt: skip
                announced = True
        else:
            for event in events:
                if event["eventId"] not in seen:
                    seen.add(event["eventId"])
                    print(format_event(event), flush=True)
                    start = max(start, event["timestamp"])
            if not follow:
                if not seen:
                    print(f"No events in {group} in the last {since_minutes:g} minutes.", file=sys.stderr)
                return 0
        sleep(FOLLOW_INTERVAL_S)


def _events(logs: Any, group: str, start: int) -> list[dict[str, Any]] | None:
    """Events from ``start`` (ms) in time order; None when the log group does not exist."""
    events: list[dict[str, Any]] = []
    request: dict[str, Any] = {"logGroupName": group, "startTime": start}
    try:
        while True:
            page = logs.filter_log_events(**request)
            events.extend(page.get("events", []))
            token = page.get("nextToken")
            if not token or token == request.get("nextToken"):
                break
            request["nextToken"] = token
    except logs.exceptions.ResourceNotFoundException:
        return None
    return sorted(events, key=lambda e: (e["timestamp"], e.get("ingestionTime", 0)))


def teardown_plan(sagemaker: Any, names: Names) -> tuple[str | None, list[str], list[str]]:
    """(endpoint if it exists, the Lambda's endpoint configs, the Lambda's models)."""
    from botocore.exceptions import ClientError

    try:
        endpoint = sagemaker.describe_endpoint(EndpointName=names.endpoint)["EndpointName"]
    except ClientError as error:
        if "Could not find" not in error.response.get("Error", {}).get("Message", ""):
            raise
        endpoint = None
    configs = _names(sagemaker, "list_endpoint_configs", "EndpointConfigs", "EndpointConfigName",
                     names.endpoint_config_prefix)  # fmt: skip
    models = _names(sagemaker, "list_models", "Models", "ModelName", names.model_prefix)
    return endpoint, configs, models


def _names(sagemaker: Any, operation: str, key: str, field: str, prefix: str) -> list[str]:
    """Names that start ``<prefix>-`` (so ``dogbreeds-dev`` never matches ``dogbreeds-dev2``)."""
    found: list[str] = []
    for page in sagemaker.get_paginator(operation).paginate(NameContains=prefix):
        found.extend(item[field] for item in page[key] if item[field].startswith(prefix + "-"))
    return sorted(found)


def teardown_endpoint(
    names: Names, region: str | None, yes: bool, confirm: Callable[[str], str] = input
) -> int:
    import boto3

    sagemaker = boto3.client("sagemaker", region_name=region)
    endpoint, configs, models = teardown_plan(sagemaker, names)
    if endpoint is None and not configs and not models:
        print(f"Endpoint {names.endpoint} does not exist and no configs or models of it remain: "
              "nothing to delete.")  # fmt: skip
        return 0
    print(f"endpoint: {endpoint or f'{names.endpoint} (does not exist)'}")
    print(f"endpoint configs: {', '.join(configs) or 'none'}")
    print(f"models: {', '.join(models) or 'none'}")
    if not yes:
        if not sys.stdin or not sys.stdin.isatty():
            print("error: not deleting without confirmation and stdin is not a terminal; pass --yes",
                  file=sys.stderr)  # fmt: skip
            return 2
        if confirm("Delete these? [y/N] ").strip().lower() not in ("y", "yes"):
            print("Nothing deleted.")
            return 1
    if endpoint:
        sagemaker.delete_endpoint(EndpointName=endpoint)
        sagemaker.get_waiter("endpoint_deleted").wait(
            EndpointName=endpoint, WaiterConfig={"Delay": 15, "MaxAttempts": 80}
        )
        print(f"deleted endpoint {endpoint}")
    for config in configs:
        sagemaker.delete_endpoint_config(EndpointConfigName=config)
        print(f"deleted endpoint config {config}")
    for model in models:
        sagemaker.delete_model(ModelName=model)
        print(f"deleted model {model}")
    return 0
