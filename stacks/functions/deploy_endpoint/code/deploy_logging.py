"""Structured JSON log lines: one object per line, so CloudWatch Logs Insights can filter on fields.

Lines that record a decision about the endpoint carry a ``deployment`` field with one of the values
below; the deployment dashboard's "Deployment events" table (stacks/constructs/deployment_dashboard.py)
lists exactly those lines, and the stack's error alarm leaves out ``retrying`` ones by this value.
"""

from __future__ import annotations

import json
import sys
from typing import Any

# The ``deployment`` field: what the function decided, one word an operator can filter on.
DEPLOYMENT_FIELD = "deployment"
STARTED = "started"  # CreateEndpoint or UpdateEndpoint was called (canary and baking times included)
COMPLETED = "completed"  # the endpoint is InService serving the version it was asked to serve
ROLLED_BACK = "rolled back"  # InService, but an approved newer version that was deployed is not live
RETRYING = "retrying"  # the endpoint is busy; the event fails on purpose so Lambda retries it
SKIPPED = "skipped"  # nothing to do (duplicate, stale or not-live decision)
IGNORED = "ignored"  # malformed event or undeployable package: dropped, a retry cannot help
FAILED = "failed"  # the endpoint is Failed, no rollback target remains, or an unexpected error
DECISIONS = (STARTED, COMPLETED, ROLLED_BACK, RETRYING, SKIPPED, IGNORED, FAILED)


def log(level: str, message: str, **fields: Any) -> None:
    """Write one JSON log line to stdout (Lambda ships stdout to the function's log group)."""
    record = {"level": level, "message": message, **fields}
    sys.stdout.write(json.dumps(record, default=str, sort_keys=True) + "\n")
    sys.stdout.flush()


def log_decision(level: str, message: str, deployment: str, **fields: Any) -> None:
    """A log line that records a decision (``deployment`` is one of ``DECISIONS``)."""
    if deployment not in DECISIONS:
        raise ValueError(f"deployment must be one of {DECISIONS}, got {deployment!r}")
    log(level, message, **{DEPLOYMENT_FIELD: deployment}, **fields)
