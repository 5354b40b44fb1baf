"""Every resource name in the system, derived from the project prefix and the environment.

The pipeline, the EventBridge rule, the deploy Lambda, the monitors and the CLI all take names from a
``Names`` instance, so for example the model package group the pipeline registers into and the one the
approval rule listens to are the same string by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

# Prefixes inside the project bucket. Lifecycle rules, IAM scopes and the jobs use these constants.
DATASETS_PREFIX = "datasets"
PRETRAINED_WEIGHTS_PREFIX = "pretrained-weights"
PIPELINE_RUNS_PREFIX = "pipeline-runs"
CAPTURE_PREFIX = "capture"
GROUND_TRUTH_PREFIX = "ground-truth"
MONITORING_PREFIX = "monitoring"
# Copies of versions promoted from another environment: promoted/<source env>/v<version>/...
PROMOTED_PREFIX = "promoted"

BUCKET_PREFIXES = (
    DATASETS_PREFIX,
    PRETRAINED_WEIGHTS_PREFIX,
    PIPELINE_RUNS_PREFIX,
    CAPTURE_PREFIX,
    GROUND_TRUTH_PREFIX,
    MONITORING_PREFIX,
    PROMOTED_PREFIX,
)
# Where a version's model, metrics and baselines live in the environment that serves it: trained
# there (pipeline-runs/) or promoted into it (promoted/). Promotion reads these from its source.
MODEL_PREFIXES = (PIPELINE_RUNS_PREFIX, PROMOTED_PREFIX)
# Outputs that grow with traffic and expire after the environment's data_retention_days.
EXPIRING_PREFIXES = (CAPTURE_PREFIX, MONITORING_PREFIX)

PRODUCTION_VARIANT = "AllTraffic"

# The environment's buckets, by purpose: ``Names.bucket(account, region, purpose)``.
DATA_BUCKET = "data"
ACCESS_LOG_BUCKET = "access-logs"
BUCKET_PURPOSES = (DATA_BUCKET, ACCESS_LOG_BUCKET)
# S3 bucket names: 3 to 63 characters.
MAX_BUCKET_NAME_LENGTH = 63


@dataclass(frozen=True)
class Names:
    """Names for one environment: ``Names("dogbreeds", "dev").model_package_group``."""

    project: str
    env: str

    @property
    def base(self) -> str:
        return f"{self.project}-{self.env}"

    def stack(self, concern: str) -> str:
        return f"{self.base}-{concern}"

    @property
    def kms_alias(self) -> str:
        return f"alias/{self.base}"

    @property
    def execution_role(self) -> str:
        return f"{self.base}-sagemaker-execution"

    @property
    def endpoint_role(self) -> str:
        return f"{self.base}-endpoint-model"

    @property
    def model_package_group(self) -> str:
        return f"{self.base}-models"

    @property
    def training_pipeline(self) -> str:
        return f"{self.base}-training"

    @property
    def monitoring_pipeline(self) -> str:
        return f"{self.base}-monitoring"

    @property
    def endpoint(self) -> str:
        return f"{self.base}-endpoint"

    @property
    def sagemaker_resource_prefix(self) -> str:
        """Models, endpoint configs and jobs the system creates all start with this."""
        return self.base

    @property
    def metric_namespace(self) -> str:
        """CloudWatch namespace of the monitors' metrics: the jobs publish to it, the execution
        role's PutMetricData condition allows it, and the alarms and dashboard read it."""
        return f"{self.project}/{self.env}"

    @property
    def dashboard(self) -> str:
        return f"{self.base}-monitoring"

    @property
    def deployment_dashboard(self) -> str:
        return f"{self.base}-deployment"

    @property
    def deployment_metric_namespace(self) -> str:
        """CloudWatch namespace of the deploy Lambda's metrics (LiveModelVersion): its own, so the
        role's PutMetricData condition cannot let it write the monitors' metrics."""
        return f"{self.project}/{self.env}/deployment"

    @property
    def alerts_topic(self) -> str:
        return f"{self.base}-alerts"

    def bucket(self, account: str, region: str, purpose: str = DATA_BUCKET) -> str:
        """Bucket names are global, so they carry the account and region (tokens in CDK)."""
        return f"{self.base}-{purpose}-{account}-{region}"

    # Deployment. The deploy Lambda gets these strings as environment variables, so the
    # stack's IAM scopes, the alarms and the Lambda's API calls name the same resources.

    @property
    def model_prefix(self) -> str:
        """SageMaker models the deploy Lambda creates: ``<model_prefix>-v<version>-<hash>``."""
        return f"{self.base}-model"

    @property
    def endpoint_config_prefix(self) -> str:
        """Endpoint configs the deploy Lambda creates: ``<prefix>-v<version>-<hash>``."""
        return f"{self.base}-config"

    @property
    def deploy_function(self) -> str:
        return f"{self.base}-deploy-endpoint"

    @property
    def deploy_dead_letter_queue(self) -> str:
        return f"{self.base}-deploy-endpoint-dlq"

    @property
    def endpoint_5xx_alarm(self) -> str:
        return f"{self.endpoint}-5xx-errors"

    @property
    def endpoint_latency_alarm(self) -> str:
        return f"{self.endpoint}-model-latency-p99"

    @property
    def endpoint_invocation_errors_alarm(self) -> str:
        return f"{self.endpoint}-invocation-errors"

    @property
    def rollback_alarms(self) -> tuple[str, str, str]:
        """The alarms a blue/green deployment watches; any of them in ALARM rolls it back."""
        return (
            self.endpoint_5xx_alarm,
            self.endpoint_latency_alarm,
            self.endpoint_invocation_errors_alarm,
        )

    @property
    def deploy_dead_letter_alarm(self) -> str:
        return f"{self.deploy_dead_letter_queue}-not-empty"

    @property
    def deploy_errors_alarm(self) -> str:
        return f"{self.deploy_function}-errors"

    # Promotion (stacks/constructs/promotion_access.py, dogbreeds/promotion.py).

    @property
    def promotion_role(self) -> str:
        """The role that promotes versions into this environment (assumed by its operators)."""
        return f"{self.base}-promotion"

    def promotion_evidence_role(self, target_env: str) -> str:
        """In a source environment: the read-only role a cross-account target's promotion role
        assumes to read the version and its evidence."""
        return f"{self.base}-evidence-for-{target_env}"

    def promoted_prefix(self, source_env: str, version: int) -> str:
        """Where a promoted version's copies go in this environment's bucket."""
        return f"{PROMOTED_PREFIX}/{source_env}/v{version}"

    @property
    def endpoint_scaling_policy(self) -> str:
        return f"{self.endpoint}-invocations-per-instance"

    # The rest of the named resources, by the stack that owns them.

    @property
    def execution_policy(self) -> str:
        return f"{self.base}-sagemaker-execution"

    def job_base_name(self, job: str) -> str:
        """SageMaker job names of a pipeline step start with this (``preprocess``, ``train`` ...)."""
        return f"{self.base}-{job}"

    @property
    def training_failed_rule(self) -> str:
        return f"{self.base}-training-failed"

    @property
    def model_approval_rule(self) -> str:
        return f"{self.base}-model-approval"

    @property
    def endpoint_in_service_rule(self) -> str:
        return f"{self.base}-endpoint-in-service"

    @property
    def endpoint_failed_rule(self) -> str:
        return f"{self.base}-endpoint-failed"

    @property
    def endpoint_deployment_rule(self) -> str:
        return f"{self.base}-endpoint-deployment"

    @property
    def monitoring_failed_rule(self) -> str:
        return f"{self.base}-monitoring-failed"

    @property
    def monitoring_schedule(self) -> str:
        return f"{self.base}-monitoring"

    @property
    def monitoring_scheduler_role(self) -> str:
        """The role EventBridge Scheduler assumes to start the monitoring pipeline (and its policy)."""
        return f"{self.base}-monitoring-scheduler"

    @property
    def monitoring_jobs_policy(self) -> str:
        return f"{self.base}-monitoring-jobs"

    @property
    def retrain_guard_function(self) -> str:
        return f"{self.base}-retrain-guard"

    @property
    def retrain_guard_dead_letter_queue(self) -> str:
        return f"{self.retrain_guard_function}-dlq"

    @property
    def retrain_on_alarm_rule(self) -> str:
        return f"{self.base}-retrain-on-alarm"


@dataclass(frozen=True)
class MonitoringAlarmNames:
    """Alarm names of one environment; the retrain rule and the dashboard refer to them by name."""

    names: Names

    @property
    def feature_drift(self) -> str:
        return f"{self.names.base}-monitoring-feature-drift"

    @property
    def prediction_drift(self) -> str:
        return f"{self.names.base}-monitoring-prediction-drift"

    @property
    def accuracy(self) -> str:
        return f"{self.names.base}-monitoring-accuracy-low"

    @property
    def execution_failed(self) -> str:
        return f"{self.names.base}-monitoring-failed"

    @property
    def no_capture_data(self) -> str:
        return f"{self.names.base}-monitoring-no-capture-data"

    @property
    def all(self) -> tuple[str, ...]:
        return (
            self.feature_drift,
            self.prediction_drift,
            self.accuracy,
            self.execution_failed,
            self.no_capture_data,
        )

    @property
    def retrain_triggers(self) -> tuple[str, ...]:
        """Drift and quality alarms: the ones that mean the model, not the plumbing, is the problem."""
        return (self.feature_drift, self.prediction_drift, self.accuracy)
