"""Retrain guard: a drift or quality alarm starts the training pipeline, but never while an execution
is running and at most once per configured interval.

EventBridge delivers "CloudWatch Alarm State Change" events of the monitoring alarms here. The
function runs one at a time (reserved concurrency 1), so two alarms firing together cannot both
start a run: the second sees the first in the execution list and skips. Imports boto3 and the
contract modules its asset carries only (no bundling).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from function_log import log  # the functions' one logger, carried at the asset's root

from contract import environment_variables as variables
from contract.events import ALARM_STATE_CHANGE

# Statuses of an execution that still holds GPUs or may still register a model.
RUNNING_STATUSES = frozenset({"Executing", "Stopping"})
# Executions older than this cannot still be running: training is capped at 5 days by settings.
RUNNING_LOOKBACK = timedelta(days=7)
DISPLAY_NAME_PREFIX = "retrain-on-alarm"
ENVIRONMENT_VARIABLES = variables.RETRAIN_GUARD


class MalformedEventError(ValueError):
    """The event is not an ALARM state change of one of the trigger alarms; it is ignored."""


@dataclass(frozen=True)
class GuardConfig:
    pipeline_name: str
    min_interval: timedelta
    trigger_alarms: frozenset[str]

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> GuardConfig:
        missing = [name for name in ENVIRONMENT_VARIABLES if not environ.get(name)]
        if missing:
            raise RuntimeError(f"retrain guard is missing environment variables {missing}")
        hours = environ[variables.RETRAIN_MIN_INTERVAL_HOURS]
        if not hours.isdigit() or int(hours) < 1:
            raise RuntimeError(
                f"{variables.RETRAIN_MIN_INTERVAL_HOURS}={hours!r} must be a whole number of hours >= 1"
            )
        return cls(
            pipeline_name=environ[variables.RETRAIN_PIPELINE_NAME],
            min_interval=timedelta(hours=int(hours)),
            trigger_alarms=frozenset(
                name for name in environ[variables.RETRAIN_TRIGGER_ALARMS].split(",") if name
            ),
        )


@dataclass(frozen=True)
class AlarmEvent:
    event_id: str
    alarm_name: str
    reason: str


def parse_alarm_event(event: Any, trigger_alarms: frozenset[str]) -> AlarmEvent:
    """The alarm that fired, or MalformedEventError naming what is wrong with the event."""
    if not isinstance(event, Mapping):
        raise MalformedEventError(f"event must be a JSON object, got {type(event).__name__}")
    if event.get("detail-type") != ALARM_STATE_CHANGE:
        raise MalformedEventError(
            f"detail-type is {event.get('detail-type')!r}; only {ALARM_STATE_CHANGE!r} is handled"
        )
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        raise MalformedEventError("event has no 'detail' object")
    alarm_name = detail.get("alarmName")
    if alarm_name not in trigger_alarms:
        raise MalformedEventError(
            f"alarm {alarm_name!r} is not a retrain trigger; triggers: {sorted(trigger_alarms)}"
        )
    state = detail.get("state")
    if not isinstance(state, Mapping) or state.get("value") != "ALARM":
        value = state.get("value") if isinstance(state, Mapping) else None
        raise MalformedEventError(f"alarm state is {value!r}; only a change to 'ALARM' starts retraining")
    event_id = event.get("id")
    if not isinstance(event_id, str) or not event_id:
        raise MalformedEventError("event has no 'id'")
    return AlarmEvent(event_id=event_id, alarm_name=alarm_name, reason=str(state.get("reason", "")))


def reason_to_skip(client: Any, config: GuardConfig, now: datetime) -> str | None:
    """Why not to start now (a running or too recent execution), or None to go ahead."""
    recent_cutoff = now - config.min_interval
    lookback = now - max(RUNNING_LOOKBACK, config.min_interval)
    paginator = client.get_paginator("list_pipeline_executions")
    pages = paginator.paginate(
        PipelineName=config.pipeline_name, SortBy="CreationTime", SortOrder="Descending"
    )
    for page in pages:
        summaries = page.get("PipelineExecutionSummaries", [])
        for summary in summaries:
            started = summary.get("StartTime")
            status = summary.get("PipelineExecutionStatus")
            arn = summary.get("PipelineExecutionArn")
            if status in RUNNING_STATUSES:
                return f"execution {arn} is {status}"
            if started is not None and started >= recent_cutoff:
                return (
                    f"execution {arn} started at {started.isoformat()}, less than "
                    f"{int(config.min_interval.total_seconds() // 3600)} h ago (retrain_min_interval_hours)"
                )
        # Newest first: once a whole page is older than the lookback, nothing older can matter.
        if summaries and all(s.get("StartTime") and s["StartTime"] < lookback for s in summaries):
            break
    return None


def guard(event: Any, *, client: Any, config: GuardConfig, now: datetime) -> dict[str, Any]:
    """Decide and act on one event; the result says what happened and why."""
    try:
        alarm = parse_alarm_event(event, config.trigger_alarms)
    except MalformedEventError as error:
        log("WARNING", "event ignored", reason=str(error))
        return {"action": "ignored", "reason": str(error)}

    skip = reason_to_skip(client, config, now)
    if skip:
        log("INFO", "retraining skipped", alarm=alarm.alarm_name, reason=skip)
        return {"action": "skipped", "alarm": alarm.alarm_name, "reason": skip}

    response = client.start_pipeline_execution(
        PipelineName=config.pipeline_name,
        PipelineExecutionDisplayName=f"{DISPLAY_NAME_PREFIX}-{now:%Y%m%d%H%M%S}",
        PipelineExecutionDescription=f"Started by alarm {alarm.alarm_name}: {alarm.reason}"[:3072],
        # EventBridge may deliver an event twice; the same token makes the second start a no-op.
        ClientRequestToken=alarm.event_id[:128].ljust(32, "0"),
    )
    arn = response["PipelineExecutionArn"]
    log("INFO", "retraining started", alarm=alarm.alarm_name, pipelineExecutionArn=arn)
    return {"action": "started", "alarm": alarm.alarm_name, "pipelineExecutionArn": arn}


def handler(event: Any, context: Any = None) -> dict[str, Any]:
    """Lambda entry point."""
    import boto3  # in the Lambda runtime; imported here so the parsing above needs no AWS SDK

    config = GuardConfig.from_environment(os.environ)
    return guard(event, client=boto3.client("sagemaker"), config=config, now=datetime.now(UTC))
