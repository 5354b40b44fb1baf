"""One CloudWatch dashboard per environment: the endpoint's health next to what the monitors found.

Endpoint rows use SageMaker's own metrics (AWS/SageMaker for invocations, /aws/sagemaker/Endpoints
for instance CPU and memory); monitor rows use the project's namespace and the metric names of
``monitoring_metrics``. Per-feature drift uses a SEARCH expression, so a feature added to
image_features.py shows up without a redeploy.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Aws, Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

from contract import monitoring_metrics as mm
from contract.naming import PRODUCTION_VARIANT, Names
from contract.settings import MonitoringSettings
from stacks.constructs.monitoring_alarms import monitor_metric

INVOCATION_NAMESPACE = "AWS/SageMaker"
INSTANCE_NAMESPACE = "/aws/sagemaker/Endpoints"
ENDPOINT_PERIOD = Duration.minutes(5)
WIDTH = 12
HEIGHT = 6


def feature_drift_search(names: Names, metric_name: str, period_seconds: int) -> str:
    """A SEARCH over every feature's drift metric of this endpoint (one line per feature)."""
    namespace = names.metric_namespace
    schema = f"{{{namespace},{mm.DIMENSION_ENDPOINT},{mm.DIMENSION_FEATURE},{mm.DIMENSION_MONITOR}}}"
    query = (
        f'{schema} MetricName="{metric_name}" {mm.DIMENSION_ENDPOINT}="{names.endpoint}" '
        f'{mm.DIMENSION_MONITOR}="{mm.MONITOR_DATA_QUALITY}"'
    )
    return f"SEARCH('{query}', 'Maximum', {period_seconds})"


class MonitoringDashboard(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: Names,
        settings: MonitoringSettings,
        period_seconds: int,
        alarms: Sequence[cloudwatch.IAlarm],
    ) -> None:
        super().__init__(scope, construct_id)
        endpoint_dims = {"EndpointName": names.endpoint, "VariantName": PRODUCTION_VARIANT}

        def endpoint_metric(namespace: str, name: str, statistic: str, label: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=namespace, metric_name=name, dimensions_map=endpoint_dims,
                statistic=statistic, period=ENDPOINT_PERIOD, label=label,
            )

        def monitor(name: str, monitor_name: str, statistic: str = "Maximum") -> cloudwatch.Metric:
            return monitor_metric(
                names, name, monitor_name, statistic=statistic, period_seconds=period_seconds
            ).with_(label=name)

        def graph(title: str, left: Sequence[cloudwatch.IMetric], **props) -> cloudwatch.GraphWidget:
            return cloudwatch.GraphWidget(title=title, left=list(left), width=WIDTH, height=HEIGHT, **props)

        self.dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=names.dashboard,
            default_interval=Duration.days(7),
        )
        self.dashboard.add_widgets(
            cloudwatch.TextWidget(
                markdown=(
                    f"# {names.base}: endpoint `{names.endpoint}`\n"
                    f"Monitors run on `{settings.schedule}`. The feature-drift alarm fires when a "
                    f"run judges a feature drifted (PSI > {settings.psi_threshold} or KS > "
                    f"{settings.ks_threshold}, beyond chance); prediction drift: predicted-breed "
                    f"distance > {settings.prediction_distance_threshold}; accuracy alarm < "
                    f"{settings.accuracy_threshold}. Windows with too few records are not judged "
                    "(Judged = 0) and publish no drift values."
                ),
                width=24,
                height=2,
            )
        )
        # The deployment stack's rollback alarms, by name: no cross-stack reference to keep in sync.
        alarm_arn = f"arn:{Aws.PARTITION}:cloudwatch:{Aws.REGION}:{Aws.ACCOUNT_ID}:alarm:"
        endpoint_alarms = [
            cloudwatch.Alarm.from_alarm_arn(self, f"EndpointAlarm{index}", f"{alarm_arn}{name}")
            for index, name in enumerate(names.rollback_alarms)
        ]
        self.dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(
                title="Alarm states", alarms=[*endpoint_alarms, *alarms], width=24, height=3
            )
        )
        self.dashboard.add_widgets(
            graph(
                "Invocations",
                [endpoint_metric(INVOCATION_NAMESPACE, "Invocations", "Sum", "Invocations")],
            ),
            graph(
                "Model latency (microseconds)",
                [
                    endpoint_metric(INVOCATION_NAMESPACE, "ModelLatency", "p50", "p50"),
                    endpoint_metric(INVOCATION_NAMESPACE, "ModelLatency", "p99", "p99"),
                ],
            ),
        )
        self.dashboard.add_widgets(
            graph(
                "Errors",
                [
                    endpoint_metric(INVOCATION_NAMESPACE, "Invocation4XXErrors", "Sum", "4xx"),
                    endpoint_metric(INVOCATION_NAMESPACE, "Invocation5XXErrors", "Sum", "5xx"),
                ],
            ),
            graph(
                "CPU and memory (%)",
                [
                    endpoint_metric(INSTANCE_NAMESPACE, "CPUUtilization", "Average", "CPU"),
                    endpoint_metric(INSTANCE_NAMESPACE, "MemoryUtilization", "Average", "Memory"),
                ],
            ),
        )
        self.dashboard.add_widgets(
            graph(
                "Drift per feature (PSI)",
                [
                    cloudwatch.MathExpression(
                        expression=feature_drift_search(names, mm.FEATURE_PSI, period_seconds),
                        label="",
                        period=Duration.seconds(period_seconds),
                    )
                ],
                left_annotations=[
                    cloudwatch.HorizontalAnnotation(value=settings.psi_threshold, label="PSI threshold")
                ],
            ),
            graph(
                "Drift per feature (KS distance)",
                [
                    cloudwatch.MathExpression(
                        expression=feature_drift_search(names, mm.FEATURE_KS, period_seconds),
                        label="",
                        period=Duration.seconds(period_seconds),
                    )
                ],
                left_annotations=[
                    cloudwatch.HorizontalAnnotation(value=settings.ks_threshold, label="KS threshold")
                ],
            ),
        )
        self.dashboard.add_widgets(
            graph(
                "Verdict: drifted features, prediction drift, judged",
                [
                    monitor(mm.DRIFTED_FEATURES, mm.MONITOR_DATA_QUALITY),
                    monitor(mm.PREDICTION_DISTANCE, mm.MONITOR_DATA_QUALITY),
                ],
                # 0 here means the window was too small to judge: no drift values were published.
                right=[monitor(mm.JUDGED, mm.MONITOR_DATA_QUALITY, "Minimum")],
                left_annotations=[
                    cloudwatch.HorizontalAnnotation(
                        value=settings.prediction_distance_threshold, label="Prediction distance threshold"
                    )
                ],
            ),
            graph(
                "Accuracy and F1",
                [
                    monitor(mm.ACCURACY, mm.MONITOR_MODEL_QUALITY, "Minimum"),
                    monitor(mm.MACRO_F1, mm.MONITOR_MODEL_QUALITY, "Minimum"),
                    monitor(mm.TOP5_ACCURACY, mm.MONITOR_MODEL_QUALITY, "Minimum"),
                ],
                left_annotations=[
                    cloudwatch.HorizontalAnnotation(
                        value=settings.accuracy_threshold, label="Accuracy threshold"
                    )
                ],
                left_y_axis=cloudwatch.YAxisProps(min=0, max=1),
            ),
        )
        self.dashboard.add_widgets(
            graph(
                "Ground-truth coverage",
                [monitor(mm.GROUND_TRUTH_COVERAGE, mm.MONITOR_MODEL_QUALITY, "Minimum")],
                right=[monitor(mm.LABELLED_RECORDS, mm.MONITOR_MODEL_QUALITY, "Sum")],
                left_y_axis=cloudwatch.YAxisProps(min=0, max=1),
            ),
            graph(
                "Records analysed, corrupt, violations",
                [
                    monitor(mm.RECORDS_ANALYSED, mm.MONITOR_DATA_QUALITY, "Sum"),
                    monitor(mm.CORRUPT_RECORDS, mm.MONITOR_DATA_QUALITY, "Sum"),
                    monitor(mm.VIOLATIONS, mm.MONITOR_DATA_QUALITY, "Sum"),
                    monitor(mm.VIOLATIONS, mm.MONITOR_MODEL_QUALITY, "Sum").with_(
                        label="Violations (model quality)"
                    ),
                ],
            ),
        )
