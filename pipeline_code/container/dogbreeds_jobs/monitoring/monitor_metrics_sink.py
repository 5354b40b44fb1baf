"""Publish monitoring metrics to CloudWatch, or to a local JSONL file in the same request shape.

The names and dimensions are the contract in ``monitoring_metrics.py`` (the monitoring stack's
alarms and dashboard read them). ``--metrics-sink cloudwatch`` calls PutMetricData in batches;
any other value is a file path (or s3:// URI) that receives one line per request, each line exactly
the keyword arguments put_metric_data would have been given (timestamps as ISO strings), so a
local run shows what the cloud run would publish.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from contract import monitoring_metrics

from . import monitor_io

CLOUDWATCH = "cloudwatch"
# PutMetricData takes up to 1,000 metrics per request; 20 keeps every request small and is the
# limit older SDKs and emulators enforce.
BATCH_SIZE = 20
COUNT = "Count"
NONE = "None"


class MetricsPublisher:
    """Collects metric data for one monitor run and publishes it in one go."""

    def __init__(self, sink: str, namespace: str, endpoint: str, monitor: str, timestamp: datetime) -> None:
        if not sink:
            raise ValueError(f"metrics sink is empty: use {CLOUDWATCH!r} or a file path")
        if not namespace or len(namespace) > 255:
            raise ValueError(f"metrics namespace must be 1-255 characters, got {namespace!r}")
        self.sink = sink
        self.namespace = namespace
        self.dimensions = [
            {"Name": monitoring_metrics.DIMENSION_ENDPOINT, "Value": endpoint},
            {"Name": monitoring_metrics.DIMENSION_MONITOR, "Value": monitor},
        ]
        self.timestamp = timestamp
        self.data: list[dict[str, Any]] = []

    def add(self, name: str, value: float, unit: str = NONE, *, feature: str | None = None) -> None:
        dimensions = list(self.dimensions)
        if feature is not None:
            dimensions.append({"Name": monitoring_metrics.DIMENSION_FEATURE, "Value": feature})
        self.data.append(
            {
                "MetricName": name,
                "Dimensions": dimensions,
                "Timestamp": self.timestamp,
                "Value": float(value),
                "Unit": unit,
            }
        )

    def requests(self) -> list[dict[str, Any]]:
        return [
            {"Namespace": self.namespace, "MetricData": self.data[i : i + BATCH_SIZE]}
            for i in range(0, len(self.data), BATCH_SIZE)
        ]

    def publish(self, cloudwatch: Any = None) -> int:
        """Send (or write) every request; returns how many metric data points went out."""
        requests = self.requests()
        if self.sink == CLOUDWATCH:
            if cloudwatch is None:  # pragma: no cover - the job's default client
                import boto3

                cloudwatch = boto3.client("cloudwatch")
            for request in requests:
                cloudwatch.put_metric_data(**request)
        else:
            lines = "".join(json.dumps(r, default=_json_default, sort_keys=True) + "\n" for r in requests)
            path = monitor_io.local_path(self.sink)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("a", encoding="utf-8") as handle:  # several runs append to one file
                    handle.write(lines)
            else:
                monitor_io.write_bytes(self.sink, lines.encode(), "application/x-ndjson")
        return len(self.data)


def _json_default(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
