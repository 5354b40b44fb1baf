"""The monitoring pipeline: data-quality and model-quality checks of the live endpoint's traffic.

AWS closed SageMaker Model Monitor to new customers, so the schedule runs this pipeline instead
(EventBridge Scheduler starts it; the monitoring stack owns that). Two CPU processing steps run in
parallel, each a script of ``pipeline_code/container`` launched through ``run_step.sh``:

* ``DataQuality`` (``monitor_data_quality.py``): image and prediction features of the window's
  capture against the live model's training-data and prediction baselines;
* ``ModelQuality`` (``monitor_model_quality.py``): captured predictions joined with ground truth.

The window ends at the hour of ``Execution.StartDateTime`` (``WindowEnd`` overrides it for local
runs and backfills). The scripts stream capture and ground truth straight from S3 and write their
reports to ``<MonitoringS3Uri>/<monitor>/yyyy/mm/dd/hh/<execution id>/`` themselves, because a
pipeline cannot build a dated prefix from the start time; the execution id keeps two runs for the
same hour (a retry, a backfill) from overwriting each other's reports. Network isolation is OFF
for both steps: they call SageMaker (endpoint -> model package -> baselines), CloudWatch
(PutMetricData) and S3 from the job.
"""

# ruff: noqa: I001  (sagemaker_offline must be imported before any sagemaker module)
from __future__ import annotations

import json

from pipeline_code import sagemaker_offline
from sagemaker.network import NetworkConfig
from sagemaker.processing import ScriptProcessor
from sagemaker.workflow.execution_variables import ExecutionVariables
from sagemaker.workflow.functions import Join
from sagemaker.workflow.parameters import ParameterFloat, ParameterInteger, ParameterString
from sagemaker.workflow.pipeline import Pipeline
from sagemaker.workflow.steps import ProcessingStep

from pipeline_code.locations import Locations
from pipeline_code.training_pipeline import RETRY_POLICIES, bundle_input
from contract.naming import CAPTURE_PREFIX, GROUND_TRUTH_PREFIX, MONITORING_PREFIX, Names
from contract.settings import EnvironmentSettings, MonitoringSettings

DATA_QUALITY_STEP = "DataQuality"
MODEL_QUALITY_STEP = "ModelQuality"
DATA_QUALITY_FOLDER = "data_quality"
MODEL_QUALITY_FOLDER = "model_quality"
# The monitors must finish before the next hourly run starts.
MAX_RUNTIME_SECONDS = 3300
DEFAULT_WINDOW_HOURS = 1
CLOUDWATCH_SINK = "cloudwatch"


class MonitoringParameters:
    """The pipeline's parameters, defaults from the environment's names and settings."""

    def __init__(self, locations: Locations, settings: MonitoringSettings, names: Names) -> None:
        endpoint = names.endpoint
        self.endpoint = ParameterString("EndpointName", default_value=endpoint)
        self.capture = ParameterString("CaptureS3Uri", default_value=locations.s3(CAPTURE_PREFIX, endpoint))
        self.ground_truth = ParameterString(
            "GroundTruthS3Uri", default_value=locations.s3(GROUND_TRUTH_PREFIX, endpoint)
        )
        self.output = ParameterString(
            "MonitoringS3Uri", default_value=locations.s3(MONITORING_PREFIX, endpoint)
        )
        # Empty: the baselines of the model the endpoint serves now (looked up by the job).
        self.baseline = ParameterString("BaselineS3Uri", default_value="")
        self.window_hours = ParameterInteger("WindowHours", default_value=DEFAULT_WINDOW_HOURS)
        self.window_end = ParameterString("WindowEnd", default_value="")
        self.metrics_sink = ParameterString("MetricsSink", default_value=CLOUDWATCH_SINK)
        self.psi = ParameterFloat("PsiThreshold", default_value=settings.psi_threshold)
        self.ks = ParameterFloat("KsThreshold", default_value=settings.ks_threshold)
        self.prediction_distance = ParameterFloat(
            "PredictionDistanceThreshold", default_value=settings.prediction_distance_threshold
        )
        self.accuracy = ParameterFloat("AccuracyThreshold", default_value=settings.accuracy_threshold)
        self.instance_type = ParameterString("MonitoringInstanceType", default_value=settings.instance_type)

    def all(self) -> list:
        return [
            self.endpoint, self.capture, self.ground_truth, self.output, self.baseline,
            self.window_hours, self.window_end, self.metrics_sink, self.psi, self.ks,
            self.prediction_distance, self.accuracy, self.instance_type,
        ]  # fmt: skip


def _common_arguments(params: MonitoringParameters, names: Names, folder: str) -> list:
    return [
        "--capture-uri", params.capture,
        "--output-uri", Join(on="/", values=[params.output, folder]),
        # Each execution's reports get their own folder: a rerun of an hour keeps the earlier ones.
        "--run-id", ExecutionVariables.PIPELINE_EXECUTION_ID,
        "--window-end", ExecutionVariables.START_DATETIME.to_string(),
        "--window-end-override", params.window_end,
        "--window-hours", params.window_hours.to_string(),
        "--baseline-uri", params.baseline,
        "--endpoint-name", params.endpoint,
        "--model-package-group", names.model_package_group,
        "--metrics-sink", params.metrics_sink,
        "--metrics-namespace", names.metric_namespace,
    ]  # fmt: skip


def build_monitoring_pipeline(locations: Locations, settings: MonitoringSettings, names: Names) -> Pipeline:
    session = sagemaker_offline.OfflinePipelineSession(locations.bucket, locations.region)
    params = MonitoringParameters(locations, settings, names)

    def processor(job: str) -> ScriptProcessor:
        return ScriptProcessor(
            role=locations.role_arn,
            image_uri=locations.processing_image_uri,
            command=["/bin/bash"],
            instance_type=params.instance_type,
            instance_count=1,
            base_job_name=names.job_base_name(job),
            volume_kms_key=locations.kms_key_id,
            output_kms_key=locations.kms_key_id,
            max_runtime_in_seconds=MAX_RUNTIME_SECONDS,
            # Off on purpose: the job calls SageMaker, CloudWatch and S3 APIs itself.
            network_config=NetworkConfig(
                enable_network_isolation=False, encrypt_inter_container_traffic=True
            ),
            sagemaker_session=session,
        )

    bundle = bundle_input(locations)
    data_quality = ProcessingStep(
        name=DATA_QUALITY_STEP,
        display_name="Image and prediction drift of the window's capture",
        step_args=processor("data-quality").run(
            code=locations.run_step_uri,
            inputs=[bundle],
            arguments=locations.run_step_arguments(
                "monitor_data_quality.py",
                *_common_arguments(params, names, DATA_QUALITY_FOLDER),
                "--psi-threshold",
                params.psi.to_string(),
                "--ks-threshold",
                params.ks.to_string(),
                "--prediction-distance-threshold",
                params.prediction_distance.to_string(),
            ),  # fmt: skip
        ),
        retry_policies=RETRY_POLICIES,
    )
    model_quality = ProcessingStep(
        name=MODEL_QUALITY_STEP,
        display_name="Accuracy of the window's predictions against ground truth",
        step_args=processor("model-quality").run(
            code=locations.run_step_uri,
            inputs=[bundle],
            arguments=locations.run_step_arguments(
                "monitor_model_quality.py",
                *_common_arguments(params, names, MODEL_QUALITY_FOLDER),
                "--ground-truth-uri",
                params.ground_truth,
                "--accuracy-threshold",
                params.accuracy.to_string(),
                "--ground-truth-delay-hours",
                str(settings.ground_truth_delay_hours),
            ),  # fmt: skip
        ),
        retry_policies=RETRY_POLICIES,
    )
    return Pipeline(
        name=names.monitoring_pipeline,
        parameters=params.all(),
        steps=[data_quality, model_quality],
        sagemaker_session=session,
    )


def render_monitoring_pipeline(
    locations: Locations, settings: EnvironmentSettings | MonitoringSettings, names: Names
) -> str:
    """Compact definition JSON with sorted keys: the same inputs always give the same bytes."""
    monitoring = settings.monitoring if isinstance(settings, EnvironmentSettings) else settings
    with sagemaker_offline.offline_rendering():
        definition = json.loads(build_monitoring_pipeline(locations, monitoring, names).definition())
    return json.dumps(definition, sort_keys=True, separators=(",", ":"))
