"""The training pipeline, built with the sagemaker SDK: the one definition for AWS and local mode.

Preprocess -> Train -> Evaluate -> CheckAccuracy -> Register (PendingManualApproval), else Fail with
the measured accuracy and the threshold. CDK renders it at synth (stacks/constructs/training_pipeline.py)
and the local executor runs the same JSON (`dogbreeds local run`).
"""

# ruff: noqa: I001  (sagemaker_offline must be imported before any sagemaker module)
from __future__ import annotations

import json

from pipeline_code import sagemaker_offline
from sagemaker.drift_check_baselines import DriftCheckBaselines
from sagemaker.inputs import TrainingInput
from sagemaker.model_metrics import MetricsSource, ModelMetrics
from sagemaker.network import NetworkConfig
from sagemaker.processing import ProcessingInput, ProcessingOutput, ScriptProcessor
from sagemaker.pytorch import PyTorch, PyTorchModel
from sagemaker.workflow.condition_step import ConditionStep
from sagemaker.workflow.conditions import ConditionGreaterThanOrEqualTo
from sagemaker.workflow.execution_variables import ExecutionVariables
from sagemaker.workflow.fail_step import FailStep
from sagemaker.workflow.functions import Join, JsonGet
from sagemaker.workflow.model_step import ModelStep
from sagemaker.workflow.parameters import (
    ParameterFloat,
    ParameterInteger,
    ParameterString,
)
from sagemaker.workflow.pipeline import Pipeline
from sagemaker.workflow.properties import PropertyFile
from sagemaker.workflow.retry import (
    SageMakerJobExceptionTypeEnum,
    SageMakerJobStepRetryPolicy,
    StepExceptionTypeEnum,
    StepRetryPolicy,
)
from sagemaker.workflow.steps import CacheConfig, ProcessingStep, TrainingStep

from pipeline_code.locations import (
    PROCESSING_BUNDLE_DIR,
    PYTHON_VERSION,
    PYTORCH_INFERENCE_VERSION,
    SERVING_ENVIRONMENT,
    Locations,
)
from contract.naming import DATASETS_PREFIX, PIPELINE_RUNS_PREFIX, PRETRAINED_WEIGHTS_PREFIX, Names
from contract.settings import TrainingSettings

# Step names are part of the contract with the local executor, the golden snapshot and the docs.
PREPROCESS_STEP = "Preprocess"
MERGE_STEP = "MergeBaseline"
# Preprocess outputs whose per-host parts MergeBaseline combines. Its results go where the monitors
# read a run's baseline (Preprocess/baseline); the hosts' parts go beside them (partial_baseline),
# so the merge never changes a Preprocess output (which would void its cache entry).
MERGED = ("baseline", "report")
TRAIN_STEP = "Train"
EVALUATE_STEP = "Evaluate"
CHECK_STEP = "CheckAccuracy"
REGISTER_STEP = "Register"
# ModelStep names its registration step "<name>-RegisterModel" in the rendered definition.
REGISTER_MODEL_STEP = f"{REGISTER_STEP}-RegisterModel"
FAIL_STEP = "AccuracyBelowThreshold"

PREDICTION_BASELINE_PROPERTY = "PredictionBaselineS3Uri"
WEIGHTS_PREFIX_PARAMETER = "PretrainedWeightsS3Prefix"
ACCURACY_JSON_PATH = "multiclass_classification_metrics.accuracy.value"
EVALUATION_REPORT = "EvaluationReport"

# Container paths (see pipeline_code/container/README.md).
PROCESSING = "/opt/ml/processing"

# Content types the endpoint accepts and returns (pipeline_code/container/inference.py).
REQUEST_CONTENT_TYPES = ["image/jpeg", "image/png", "application/x-image", "application/json"]
RESPONSE_CONTENT_TYPES = ["application/json"]
INFERENCE_INSTANCE_TYPES = ["ml.m5.large", "ml.m5.xlarge", "ml.c5.xlarge", "ml.g4dn.xlarge"]

METRIC_DEFINITIONS = [
    {"Name": name, "Regex": rf"{name}=([0-9.]+)"}
    for name in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "images_per_second")
]

# Retry what AWS says is transient; never retry our own code's failures.
RETRY_POLICIES = [
    StepRetryPolicy(
        exception_types=[StepExceptionTypeEnum.SERVICE_FAULT, StepExceptionTypeEnum.THROTTLING],
        interval_seconds=10,
        backoff_rate=2.0,
        max_attempts=5,
    ),
    SageMakerJobStepRetryPolicy(
        exception_types=[
            SageMakerJobExceptionTypeEnum.INTERNAL_ERROR,
            SageMakerJobExceptionTypeEnum.CAPACITY_ERROR,
            SageMakerJobExceptionTypeEnum.RESOURCE_LIMIT,
        ],
        interval_seconds=60,
        backoff_rate=2.0,
        max_attempts=3,
    ),
]
CACHE = CacheConfig(enable_caching=True, expire_after="P30D")


class TrainingParameters:
    """The pipeline's parameters, with defaults from the environment's settings."""

    def __init__(self, locations: Locations, settings: TrainingSettings) -> None:
        self.dataset = ParameterString(
            "DatasetS3Uri", default_value=locations.s3(DATASETS_PREFIX, "current") + "/"
        )
        # Weights live in one folder per backbone below this prefix; the training channel joins
        # the two, so overriding Backbone alone picks that backbone's weights.
        self.weights_prefix = ParameterString(
            WEIGHTS_PREFIX_PARAMETER, default_value=locations.s3(PRETRAINED_WEIGHTS_PREFIX)
        )
        self.backbone = ParameterString("Backbone", default_value=settings.backbone)
        self.epochs = ParameterInteger("Epochs", default_value=settings.epochs)
        self.batch_size = ParameterInteger("BatchSize", default_value=settings.batch_size)
        self.learning_rate = ParameterFloat("LearningRate", default_value=settings.learning_rate)
        self.image_size = ParameterInteger("ImageSize", default_value=settings.image_size)
        self.instance_type = ParameterString(
            "TrainingInstanceType", default_value=settings.instance_type
        )
        self.instance_count = ParameterInteger(
            "TrainingInstanceCount", default_value=settings.instance_count
        )
        # Preprocess hosts: each decodes the share of the images ShardedByS3Key gives it.
        self.preprocess_instance_count = ParameterInteger("PreprocessInstanceCount", default_value=1)
        self.accuracy_threshold = ParameterFloat(
            "AccuracyThreshold", default_value=settings.accuracy_threshold
        )
        self.approval_status = ParameterString(
            "ModelApprovalStatus", default_value="PendingManualApproval"
        )

    def all(self) -> list:
        return [
            self.dataset, self.weights_prefix, self.backbone, self.epochs, self.batch_size,
            self.learning_rate, self.image_size, self.instance_type, self.instance_count,
            self.accuracy_threshold, self.approval_status, self.preprocess_instance_count,
        ]


def cache_size(image_size: int) -> int:
    """Side of the cached squares: the 256/224 ratio of ImageNet's resize-then-crop."""
    return round(image_size * 256 / 224)


def _run_output(locations: Locations, step: str, output: str) -> Join:
    """s3://<bucket>/pipeline-runs/<execution id>/<step>/<output>"""
    return Join(
        on="/",
        values=[
            "s3:/", locations.bucket, PIPELINE_RUNS_PREFIX,
            ExecutionVariables.PIPELINE_EXECUTION_ID, step, output,
        ],
    )


def _processor(
    locations: Locations, settings: TrainingSettings, session, base_job_name: str,
    instance_count=1,
) -> ScriptProcessor:  # fmt: skip
    return ScriptProcessor(
        role=locations.role_arn,
        image_uri=locations.processing_image_uri,
        command=["/bin/bash"],
        instance_type=settings.processing_instance_type,
        instance_count=instance_count,
        base_job_name=base_job_name,
        volume_kms_key=locations.kms_key_id,
        output_kms_key=locations.kms_key_id,
        network_config=NetworkConfig(
            enable_network_isolation=settings.network_isolation,
            encrypt_inter_container_traffic=settings.inter_container_encryption,
        ),
        sagemaker_session=session,
    )


def bundle_input(locations: Locations) -> ProcessingInput:
    return ProcessingInput(
        source=locations.source_bundle_uri, destination=PROCESSING_BUNDLE_DIR, input_name="bundle"
    )


def build_training_pipeline(
    locations: Locations, settings: TrainingSettings, names: Names
) -> Pipeline:
    session = sagemaker_offline.OfflinePipelineSession(locations.bucket, locations.region)
    params = TrainingParameters(locations, settings)

    preprocess_outputs = {
        name: f"{PROCESSING}/{name}" for name in ("cache", "test", "baseline", "report")
    }
    preprocess = ProcessingStep(
        name=PREPROCESS_STEP,
        display_name="Validate, split and cache images; training-data baseline",
        step_args=_processor(
            locations, settings, session, names.job_base_name("preprocess"),
            instance_count=params.preprocess_instance_count,
        ).run(
            code=locations.run_step_uri,
            inputs=[
                ProcessingInput(
                    source=params.dataset,
                    destination=f"{PROCESSING}/input/data",
                    input_name="data",
                    # Each host gets a disjoint share of the images (all of them with one host).
                    s3_data_distribution_type="ShardedByS3Key",
                ),
                bundle_input(locations),
            ],
            outputs=[
                ProcessingOutput(
                    output_name=name,
                    source=path,
                    # The hosts' baselines and reports are partial; MergeBaseline writes the
                    # merged ones to Preprocess/baseline and Preprocess/report.
                    destination=_run_output(
                        locations, PREPROCESS_STEP, f"partial_{name}" if name in MERGED else name
                    ),
                )
                for name, path in preprocess_outputs.items()
            ],
            arguments=locations.run_step_arguments(
                "preprocess.py",
                "--input-dir", f"{PROCESSING}/input/data",
                *[arg for name, path in preprocess_outputs.items()
                  for arg in (f"--{name}-dir", path)],
                # Cached images are a little larger than the model input, for random crops.
                "--cache-size", str(cache_size(settings.image_size)),
                # Where SageMaker describes the cluster (passed, so local mode maps it too).
                "--resource-config", "/opt/ml/config/resourceconfig.json",
                # The plan preprocess prints first (and refuses on) needs the instance types.
                "--processing-instance-type", settings.processing_instance_type,
                "--training-instance-type", params.instance_type,
                "--training-instance-count", params.instance_count.to_string(),
            ),
        ),
        cache_config=CACHE,
        retry_policies=RETRY_POLICIES,
    )

    # The hosts' partial baselines become one statistics.json where the monitors read it (the
    # preprocess baseline prefix); see merge_baseline.py for why this is a step of its own. It
    # needs only Preprocess, so it runs beside Train.
    merge_outputs = {name: f"{PROCESSING}/{name}" for name in MERGED}
    merge = ProcessingStep(
        name=MERGE_STEP,
        display_name="Merge the preprocess hosts' baselines and reports",
        step_args=_processor(locations, settings, session, names.job_base_name("merge")).run(
            code=locations.run_step_uri,
            inputs=[
                *[
                    ProcessingInput(
                        source=preprocess.properties.ProcessingOutputConfig.Outputs[
                            name
                        ].S3Output.S3Uri,
                        destination=f"{PROCESSING}/partial/{name}",
                        input_name=f"partial_{name}",
                    )
                    for name in merge_outputs
                ],
                bundle_input(locations),
            ],
            outputs=[
                ProcessingOutput(
                    output_name=name,
                    source=path,
                    destination=_run_output(locations, PREPROCESS_STEP, name),
                )
                for name, path in merge_outputs.items()
            ],
            arguments=locations.run_step_arguments(
                "merge_baseline.py",
                "--baseline-dir", f"{PROCESSING}/partial/baseline",
                "--report-dir", f"{PROCESSING}/partial/report",
                "--out-baseline-dir", merge_outputs["baseline"],
                "--out-report-dir", merge_outputs["report"],
            ),
        ),
        cache_config=CACHE,
        retry_policies=RETRY_POLICIES,
    )

    estimator = PyTorch(
        entry_point="train.py",
        source_dir=locations.source_bundle_uri,
        image_uri=locations.training_image_uri,
        role=locations.role_arn,
        instance_type=params.instance_type,
        instance_count=params.instance_count,
        base_job_name=names.job_base_name("train"),
        hyperparameters={
            "backbone": params.backbone,
            "epochs": params.epochs,
            "batch-size": params.batch_size,
            "lr": params.learning_rate,
            "image-size": params.image_size,
            "checkpoint-dir": "/opt/ml/checkpoints",
        },
        distribution={"torch_distributed": {"enabled": True}},
        metric_definitions=METRIC_DEFINITIONS,
        # Spot is a deploy-time setting, not a parameter: MaxWaitTimeInSeconds must be present exactly
        # when spot is on, and a parameter cannot add or remove a field of the request.
        use_spot_instances=settings.use_spot,
        max_run=settings.max_runtime_seconds,
        max_wait=settings.max_runtime_seconds * 2 if settings.use_spot else None,
        checkpoint_s3_uri=_run_output(locations, TRAIN_STEP, "checkpoints"),
        checkpoint_local_path="/opt/ml/checkpoints",
        output_path=_run_output(locations, TRAIN_STEP, "output"),
        volume_kms_key=locations.kms_key_id,
        output_kms_key=locations.kms_key_id,
        enable_network_isolation=settings.network_isolation,
        encrypt_inter_container_traffic=settings.inter_container_encryption,
        disable_profiler=True,
        debugger_hook_config=False,
        sagemaker_session=session,
    )
    # With network isolation the bundle arrives as the "code" channel and SageMaker names the file
    # after its S3 key; the SDK assumes "sourcedir.tar.gz", which a content-hashed asset is not.
    estimator.CONTAINER_CODE_CHANNEL_SOURCEDIR_PATH = locations.training_bundle_path
    train = TrainingStep(
        name=TRAIN_STEP,
        display_name="Fine-tune the backbone",
        step_args=estimator.fit(
            inputs={
                "train": TrainingInput(
                    s3_data=preprocess.properties.ProcessingOutputConfig.Outputs[
                        "cache"
                    ].S3Output.S3Uri
                ),
                "weights": TrainingInput(
                    s3_data=Join(on="/", values=[params.weights_prefix, params.backbone, ""])
                ),
            }
        ),
        cache_config=CACHE,
        retry_policies=RETRY_POLICIES,
    )
    model_data = train.properties.ModelArtifacts.S3ModelArtifacts

    evaluation_report = PropertyFile(
        name=EVALUATION_REPORT, output_name="evaluation", path="evaluation.json"
    )
    evaluate_outputs = {
        "evaluation": f"{PROCESSING}/evaluation",
        "quality_baseline": f"{PROCESSING}/quality_baseline",
        "prediction_baseline": f"{PROCESSING}/prediction_baseline",
    }
    evaluate = ProcessingStep(
        name=EVALUATE_STEP,
        display_name="Evaluate on the test split through the serving handler",
        step_args=_processor(locations, settings, session, names.job_base_name("evaluate")).run(
            code=locations.run_step_uri,
            inputs=[
                ProcessingInput(
                    source=model_data, destination=f"{PROCESSING}/model", input_name="model"
                ),
                ProcessingInput(
                    source=preprocess.properties.ProcessingOutputConfig.Outputs[
                        "test"
                    ].S3Output.S3Uri,
                    destination=f"{PROCESSING}/test",
                    input_name="test",
                ),
                bundle_input(locations),
            ],
            outputs=[
                ProcessingOutput(
                    output_name=name,
                    source=path,
                    destination=_run_output(locations, EVALUATE_STEP, name),
                )
                for name, path in evaluate_outputs.items()
            ],
            arguments=locations.run_step_arguments(
                "evaluate.py",
                "--model-dir", f"{PROCESSING}/model",
                "--test-dir", f"{PROCESSING}/test",
                "--evaluation-dir", evaluate_outputs["evaluation"],
                "--quality-baseline-dir", evaluate_outputs["quality_baseline"],
                "--prediction-baseline-dir", evaluate_outputs["prediction_baseline"],
            ),
        ),
        property_files=[evaluation_report],
        cache_config=CACHE,
        retry_policies=RETRY_POLICIES,
    )

    def evaluate_output(name: str, file: str) -> Join:
        uri = evaluate.properties.ProcessingOutputConfig.Outputs[name].S3Output.S3Uri
        return Join(on="/", values=[uri, file])

    def merged_output(name: str, file: str) -> Join:
        uri = merge.properties.ProcessingOutputConfig.Outputs[name].S3Output.S3Uri
        return Join(on="/", values=[uri, file])

    def json_source(uri: Join) -> MetricsSource:
        return MetricsSource(s3_uri=uri, content_type="application/json")

    # The same baseline files are the package's metrics and its drift-check baselines.
    data_statistics = json_source(merged_output("baseline", "statistics.json"))
    data_constraints = json_source(merged_output("baseline", "constraints.json"))
    quality_constraints = json_source(evaluate_output("quality_baseline", "constraints.json"))

    model = PyTorchModel(
        model_data=model_data,
        image_uri=locations.inference_image_uri,
        role=locations.role_arn,
        framework_version=PYTORCH_INFERENCE_VERSION,
        py_version=PYTHON_VERSION,
        env=dict(SERVING_ENVIRONMENT),
        sagemaker_session=session,
    )
    register = ModelStep(
        name=REGISTER_STEP,
        display_name="Register the model for approval",
        step_args=model.register(
            content_types=REQUEST_CONTENT_TYPES,
            response_types=RESPONSE_CONTENT_TYPES,
            inference_instances=INFERENCE_INSTANCE_TYPES,
            transform_instances=["ml.m5.xlarge"],
            model_package_group_name=names.model_package_group,
            approval_status=params.approval_status,
            model_metrics=ModelMetrics(
                model_statistics=json_source(evaluate_output("evaluation", "evaluation.json")),
                model_constraints=quality_constraints,
                model_data_statistics=data_statistics,
                model_data_constraints=data_constraints,
            ),
            drift_check_baselines=DriftCheckBaselines(
                model_data_statistics=data_statistics,
                model_data_constraints=data_constraints,
                model_statistics=json_source(evaluate_output("quality_baseline", "statistics.json")),
                model_constraints=quality_constraints,
            ),
            description="Dog-breed classifier trained by the pipeline",
            # The monitors compare live prediction distributions with this; DriftCheckBaselines
            # has no slot for it.
            customer_metadata_properties={
                PREDICTION_BASELINE_PROPERTY: evaluate_output("prediction_baseline", ""),
            },
        ),
    )

    accuracy = JsonGet(
        step_name=EVALUATE_STEP, property_file=evaluation_report, json_path=ACCURACY_JSON_PATH
    )
    fail = FailStep(
        name=FAIL_STEP,
        error_message=Join(
            on=" ",
            values=[
                "Test accuracy", accuracy, "is below the threshold", params.accuracy_threshold,
                "- the model was not registered.",
            ],
        ),
    )
    check = ConditionStep(
        name=CHECK_STEP,
        display_name="Register only if test accuracy reaches the threshold",
        conditions=[ConditionGreaterThanOrEqualTo(left=accuracy, right=params.accuracy_threshold)],
        if_steps=[register],
        else_steps=[fail],
    )

    return Pipeline(
        name=names.training_pipeline,
        parameters=params.all(),
        steps=[preprocess, merge, train, evaluate, check],
        sagemaker_session=session,
    )


def render_training_pipeline(
    locations: Locations, settings: TrainingSettings, names: Names
) -> str:
    """Compact definition JSON with sorted keys: the same inputs always give the same bytes."""
    with sagemaker_offline.offline_rendering():
        definition = json.loads(build_training_pipeline(locations, settings, names).definition())
    return json.dumps(definition, sort_keys=True, separators=(",", ":"))
