"""Lambda entry point: EventBridge events in, endpoint changes out. See README.md in this folder.

Errors split three ways. A malformed event or an undeployable package is logged with the reason and
dropped (a retry cannot fix it). An endpoint mid-rollout raises EndpointBusyError, so Lambda's asynchronous
retries deliver the event again later (and the endpoint's next InService event catches up on it, if
the retries run out). Anything unexpected raises too, ending in the dead-letter queue after retries.
"""

from __future__ import annotations

import os
from typing import Any

import boto3
from deploy_config import DeployConfig
from deploy_events import MalformedEventError, parse_event
from deploy_logging import log
from endpoint_rollout import EndpointBusyError, PackageNotDeployableError, Rollout


def handler(event: Any, context: Any = None) -> dict[str, Any]:
    config = DeployConfig.from_environ(os.environ)
    request_id = getattr(context, "aws_request_id", None)
    try:
        request = parse_event(event, config)
    except MalformedEventError as error:
        log("WARNING", "ignored malformed event", reason=str(error), request_id=request_id,
            event_id=event.get("id") if isinstance(event, dict) else None)
        return {"action": "ignored", "reason": str(error)}
    log("INFO", "received", request=type(request).__name__, request_id=request_id, **vars(request))
    rollout = Rollout(config, boto3.client("sagemaker"), boto3.client("application-autoscaling"))
    try:
        result = rollout.handle(request)
    except PackageNotDeployableError as error:
        log("ERROR", "ignored undeployable model package", reason=str(error), request_id=request_id)
        return {"action": "ignored", "reason": str(error)}
    except EndpointBusyError as error:
        log("WARNING", "endpoint busy, event will be retried", reason=str(error), request_id=request_id)
        raise
    log("INFO", "done", request_id=request_id, **result)
    return result
