"""What the deploy Lambda publishes about deployments: the contract between the function (which writes
them) and the deployment stack's dashboard and alarms (which read them).

* The metric ``LIVE_MODEL_VERSION`` (namespace ``Names.deployment_metric_namespace``, dimension
  ``DIMENSION_ENDPOINT``): the model package version the endpoint serves, put after each rollout.
* Decision log lines: JSON lines with the field ``DEPLOYMENT_FIELD`` set to one of ``DECISIONS``; the
  dashboard tables them, and the errors alarm leaves out ``RETRYING`` ones (a deliberate retry).

Standard library only: the deploy Lambda's asset carries this module.
"""

from __future__ import annotations

LIVE_MODEL_VERSION = "LiveModelVersion"
DIMENSION_ENDPOINT = "EndpointName"

DEPLOYMENT_FIELD = "deployment"
STARTED = "started"  # CreateEndpoint or UpdateEndpoint was called (canary and baking times included)
COMPLETED = "completed"  # the endpoint is InService serving the version it was asked to serve
ROLLED_BACK = "rolled back"  # InService, but an approved newer version that was deployed is not live
RETRYING = "retrying"  # the endpoint is busy; the event fails on purpose so Lambda retries it
SKIPPED = "skipped"  # nothing to do (duplicate, stale or not-live decision)
IGNORED = "ignored"  # malformed event or undeployable package: dropped, a retry cannot help
FAILED = "failed"  # the endpoint is Failed, no rollback target remains, or an unexpected error
DECISIONS = (STARTED, COMPLETED, ROLLED_BACK, RETRYING, SKIPPED, IGNORED, FAILED)
