"""The deploy function's decision log lines, written with the functions' one logger (function_log).

Lines that record a decision about the endpoint carry a ``deployment`` field with one of the values
of ``contract.deployment_metrics``; the deployment dashboard's "Deployment events" table lists exactly
those lines, and the stack's error alarm leaves out ``retrying`` ones by this value.
"""

from __future__ import annotations

from typing import Any

from function_log import log  # the functions' one logger, carried at the asset's root

# The ``deployment`` field and its values: what the function decided, one word an operator can filter on.
from contract.deployment_metrics import (  # noqa: F401  (the handler's modules import them from here)
    COMPLETED,
    DECISIONS,
    DEPLOYMENT_FIELD,
    FAILED,
    IGNORED,
    RETRYING,
    ROLLED_BACK,
    SKIPPED,
    STARTED,
)


def log_decision(level: str, message: str, deployment: str, **fields: Any) -> None:
    """A log line that records a decision (``deployment`` is one of ``DECISIONS``)."""
    if deployment not in DECISIONS:
        raise ValueError(f"deployment must be one of {DECISIONS}, got {deployment!r}")
    log(level, message, **{DEPLOYMENT_FIELD: deployment}, **fields)
