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
from deploy_logging import FAILED, IGNORED, RETRYING, log_decision
from endpoint_rollout import EndpointBusyError, PackageNotDeployableError, Rollout
from function_log import log


def handler(event: Any, context: Any = None) -> dict[str, Any]:
    config = DeployConfig.from_environ(os.environ)
    request_id = getattr(context, "aws_request_id", None)
    try:
        request = parse_event(event, config)
    except MalformedEventError as error:
        log_decision("WARNING", "ignored malformed event", IGNORED, reason=str(error), request_id=request_id,
                     event_id=event.get("id") if isinstance(event, dict) else None)
        return {"action": "ignored", "reason": str(error)}
    log("INFO", "received", request=type(request).__name__, request_id=request_id, **vars(request))
    rollout = Rollout(
        config,
        boto3.client("sagemaker"),
        boto3.client("application-autoscaling"),
        cloudwatch=boto3.client("cloudwatch"),
    )
    version = getattr(request, "version", None)
    try:
        result = rollout.handle(request)
    except PackageNotDeployableError as error:
        log_decision("ERROR", "ignored undeployable model package", IGNORED, reason=str(error),
                     version=version, request_id=request_id)
        return {"action": "ignored", "reason": str(error)}
    except EndpointBusyError as error:
        log_decision("WARNING", "endpoint busy, event will be retried", RETRYING, reason=str(error),
                     version=version, request_id=request_id)
        raise
    except Exception as error:
        # Lambda retries the event, then sends it to the dead-letter queue; this line says why.
        log_decision("ERROR", "deployment step failed, event will be retried", FAILED,
                     reason=f"{type(error).__name__}: {error}", version=version, request_id=request_id)
        raise
    log("INFO", "done", request_id=request_id, **result)
    return result
