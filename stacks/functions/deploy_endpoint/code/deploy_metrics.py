"""The ``LiveModelVersion`` metric: the model package version the endpoint serves, after each rollout.

Published whenever the endpoint becomes InService (a deployment completed or was rolled back), to the
namespace the stack gives the function (``DEPLOY_METRIC_NAMESPACE``; the role may put metrics into that
namespace only), with the dimension ``EndpointName``. The deployment dashboard graphs it, so its history
shows which version served when.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from deploy_config import DeployConfig
from function_log import log

from contract.deployment_metrics import DIMENSION_ENDPOINT, LIVE_MODEL_VERSION


def publish_live_version(cloudwatch: Any, config: DeployConfig, version: int) -> bool:
    """Put one datapoint; a failure is logged as ERROR and not raised (the endpoint is fine)."""
    try:
        cloudwatch.put_metric_data(
            Namespace=config.metric_namespace,
            MetricData=[
                {
                    "MetricName": LIVE_MODEL_VERSION,
                    "Dimensions": [{"Name": DIMENSION_ENDPOINT, "Value": config.endpoint_name}],
                    "Value": float(version),
                    "Unit": "None",
                }
            ],
        )
    except (BotoCoreError, ClientError) as error:
        log(
            "ERROR",
            "could not publish the live model version metric",
            metric=LIVE_MODEL_VERSION,
            namespace=config.metric_namespace,
            version=version,
            reason=str(error),
        )
        return False
    return True
