"""Alarms on the monitors' metrics and on the monitoring pipeline itself, all to the alerts topic.

Metric names, dimensions and namespace come from ``pipeline_code.container.monitoring_metrics`` (the
contract with the jobs that publish them); thresholds come from MonitoringSettings.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_sns as sns
from constructs import Construct

from contract import monitoring_metrics as mm
from contract.events import PIPELINE_EXECUTION_STATUS_CHANGE, SAGEMAKER_SOURCE
from contract.naming import MonitoringAlarmNames, Names  # noqa: F401  (re-exported)
from contract.settings import MonitoringSettings

# SageMaker Pipelines publishes execution counts here, per pipeline.
PIPELINES_NAMESPACE = "AWS/Sagemaker/ModelBuildingPipeline"
PIPELINES_FAILED_METRIC = "ExecutionFailed"
MAX_EVALUATION_SECONDS = 86400


def monitor_metric(
    names: Names, metric_name: str, monitor: str, *, statistic: str, period_seconds: int
) -> cloudwatch.Metric:
    """One of the monitors' metrics for this environment's endpoint."""
    return cloudwatch.Metric(
        namespace=names.metric_namespace,
        metric_name=metric_name,
        dimensions_map={mm.DIMENSION_ENDPOINT: names.endpoint, mm.DIMENSION_MONITOR: monitor},
        statistic=statistic,
        period=Duration.seconds(period_seconds),
    )


def no_data_evaluation_periods(period_seconds: int) -> int:
    """2 periods, or 1 where 2 would pass CloudWatch's one-day limit on period x evaluation periods."""
    return 2 if 2 * period_seconds <= MAX_EVALUATION_SECONDS else 1


class MonitoringAlarms(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: Names,
        settings: MonitoringSettings,
        period_seconds: int,
        monitoring_pipeline_name: str,
        monitoring_pipeline_arn: str,
        alerts_topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        self.alarm_names = alarm_names = MonitoringAlarmNames(names)
        action = cw_actions.SnsAction(alerts_topic)

        def alarm(construct_id: str, evaluation_periods: int = 1, **props) -> cloudwatch.Alarm:
            created = cloudwatch.Alarm(
                self, construct_id, evaluation_periods=evaluation_periods,
                datapoints_to_alarm=evaluation_periods, **props
            )
            created.add_alarm_action(action)
            return created

        # One run per period: Maximum/Minimum of the run's values. Each alarm reads the monitor's
        # verdict for its window (the monitors publish these only for windows they judged), so an
        # alarm and the run's constraint_violations.json never disagree. No run means no verdict;
        # the no-data and failure alarms cover missing runs.
        reports = f"s3://<data bucket>/monitoring/{names.endpoint}"
        self.feature_drift = alarm(
            "FeatureDrift",
            alarm_name=alarm_names.feature_drift,
            alarm_description=(
                f"Images sent to {names.endpoint} no longer look like the training data: the "
                "data-quality monitor judged at least one feature drifted (PSI above "
                f"{settings.psi_threshold} or KS above {settings.ks_threshold}, beyond chance, over "
                "enough images). What to do: open the run's report.html under "
                f"{reports}/data_quality/ to see which feature moved and how; if the new inputs are "
                "legitimate, retrain on data that includes them (retrain_on_drift starts a run); if "
                "not, find the client sending them."
            ),
            metric=monitor_metric(
                names, mm.DRIFTED_FEATURES, mm.MONITOR_DATA_QUALITY, statistic="Maximum",
                period_seconds=period_seconds,
            ),
            threshold=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.prediction_drift = alarm(
            "PredictionDrift",
            alarm_name=alarm_names.prediction_drift,
            alarm_description=(
                f"{names.endpoint} predicts breeds in different shares than on its test set: the "
                "largest change of any breed's share (L-infinity distance) exceeded "
                f"{settings.prediction_distance_threshold} "
                "(monitoring.prediction_distance_threshold) in a window with enough images. "
                "What to do: compare the predicted-breed chart in the run's report.html under "
                f"{reports}/data_quality/ with the baseline; a real shift in what users send calls "
                "for retraining, a single breed taking over points to a broken input or model."
            ),
            metric=monitor_metric(
                names, mm.PREDICTION_DISTANCE, mm.MONITOR_DATA_QUALITY, statistic="Maximum",
                period_seconds=period_seconds,
            ),
            threshold=settings.prediction_distance_threshold,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.accuracy = alarm(
            "AccuracyLow",
            alarm_name=alarm_names.accuracy,
            alarm_description=(
                f"{names.endpoint} is wrong too often: accuracy against ground truth fell below "
                f"{settings.accuracy_threshold} (monitoring.accuracy_threshold) in a window with "
                "enough labels. What to do: read the per-breed recall and the most confused pairs "
                f"in the run's report.html under {reports}/model_quality/; check the labels "
                "themselves, then retrain or roll back to the previous version (dogbreeds models)."
            ),
            metric=monitor_metric(
                names, mm.ACCURACY, mm.MONITOR_MODEL_QUALITY, statistic="Minimum",
                period_seconds=period_seconds,
            ),
            threshold=settings.accuracy_threshold,
            comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            # No labels in a window is a coverage question, shown on the dashboard, not a bad model.
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.no_capture_data = alarm(
            "NoCaptureData",
            alarm_name=alarm_names.no_capture_data,
            alarm_description=(
                f"The data-quality monitor read no captured records of {names.endpoint} in its "
                "window, or did not report at all. What to do: check that the endpoint gets "
                "traffic (Invocations on the dashboard), that data capture is on, and that the "
                f"monitoring pipeline {monitoring_pipeline_name} ran and succeeded."
            ),
            metric=monitor_metric(
                names, mm.RECORDS_ANALYSED, mm.MONITOR_DATA_QUALITY, statistic="Sum",
                period_seconds=period_seconds,
            ),
            threshold=1,
            comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            # A monitor that never reports is as bad as one that reports zero.
            treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
            # Two empty periods in a row: a run that lands late in the next period is not an outage.
            evaluation_periods=no_data_evaluation_periods(period_seconds),
        )
        self.execution_failed = alarm(
            "MonitoringFailed",
            alarm_name=alarm_names.execution_failed,
            alarm_description=(
                f"An execution of {monitoring_pipeline_name} failed, so a window went unjudged. "
                "What to do: the execution's page in SageMaker Studio (Pipelines) shows the failed "
                "step and its log; fix the cause, then backfill the hour by starting the pipeline "
                "with the WindowEnd parameter set to it."
            ),
            metric=cloudwatch.Metric(
                namespace=PIPELINES_NAMESPACE,
                metric_name=PIPELINES_FAILED_METRIC,
                dimensions_map={"PipelineName": monitoring_pipeline_name},
                statistic="Sum",
                period=Duration.seconds(period_seconds),
            ),
            threshold=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.alarms = (
            self.feature_drift,
            self.prediction_drift,
            self.accuracy,
            self.no_capture_data,
            self.execution_failed,
        )

        # The alarm needs SageMaker's metric; the event reaches the topic at once, with the reason.
        self.failed_rule = events.Rule(
            self,
            "MonitoringFailedRule",
            rule_name=names.monitoring_failed_rule,
            description="Failed monitoring pipeline executions notify the alerts topic",
            event_pattern=events.EventPattern(
                source=[SAGEMAKER_SOURCE],
                detail_type=[PIPELINE_EXECUTION_STATUS_CHANGE],
                detail={
                    "currentPipelineExecutionStatus": ["Failed"],
                    "pipelineArn": [monitoring_pipeline_arn],
                },
            ),
            targets=[targets.SnsTopic(alerts_topic)],
        )
