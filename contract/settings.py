"""Typed, validated settings for one environment, read from cdk.json context.

cdk.json holds a block per environment under ``environments``; ``-c env=NAME`` picks one (default
``dev``). Everything the stacks need comes from here: nothing deeper reads os.environ. A bad value fails
synth with a ``SettingsError`` that names the key, the value and what is allowed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from contract.container_images import pytorch_registry_accounts
from contract.instance_types import PROCESSING_TYPES, TRAINING_TYPES
from contract.naming import BUCKET_PURPOSES, MAX_BUCKET_NAME_LENGTH, Names

DEFAULT_ENVIRONMENT = "dev"
# Environments whose buckets and key must never be deleted with the stack.
PROTECTED_ENVIRONMENTS = ("prod",)

# Every pattern must match the whole value (re.fullmatch): "$" would also accept a trailing newline.
_INSTANCE_TYPE = re.compile(r"ml\.[a-z][a-z0-9-]*\.([0-9]*x?large|medium|small|micro)")
_ACCOUNT = re.compile(r"[0-9]{12}")
_REGION = re.compile(r"[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]")
# ASCII only: the local part's characters of RFC 5322 (no spaces or control characters, which
# break the template), then a domain name with at least one dot.
_EMAIL = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@"
    r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+"
)
# rate(N unit): singular for 1 ("rate(1 hour)"), plural otherwise, as EventBridge Scheduler wants.
_RATE = re.compile(r"rate\(([1-9][0-9]*) (minute|hour|day)(s?)\)")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
# Each run reads the capture since the previous one, and the alarms' periods follow the schedule;
# CloudWatch allows periods of at most a day, so a longer interval would leave hours unmonitored.
MAX_SCHEDULE_SECONDS = 86400
# The longest name among the regions the project can deploy to (those with AWS's PyTorch images,
# see stacks/dlc_registries.py); an environment-agnostic template may go to any of them, so names
# that carry the region must fit with this one.
LONGEST_REGION = "us-isof-south-1"
_PREFIX = re.compile(r"[a-z][a-z0-9]{1,11}")
_ENV_NAME = re.compile(r"[a-z][a-z0-9]{1,9}")


def _matches(pattern: re.Pattern[str], rule: str, message: str):
    """A validator that accepts exactly the strings ``pattern`` matches in full. Its docstring
    (``rule``) is what the settings reference shows as allowed; ``.pattern`` is the regex."""

    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(message)
        return value

    check.__doc__ = rule
    check.pattern = pattern  # type: ignore[attr-defined]
    return check


_instance_type = _matches(
    _INSTANCE_TYPE,
    "ml.<family>.<size>, e.g. ml.g4dn.xlarge",
    "must be a SageMaker instance type like ml.g4dn.xlarge or ml.m5.large (ml.<family>.<size>)",
)
_account = _matches(_ACCOUNT, "12-digit account id", "must be a 12-digit AWS account id")
_region_name = _matches(_REGION, "", "must be an AWS region name like eu-west-1")


def supported_regions() -> tuple[str, ...]:
    """Regions where AWS publishes the PyTorch images the pipelines and the endpoint run."""
    return tuple(pytorch_registry_accounts())


def _region(value: str) -> str:
    """region with AWS's PyTorch images, e.g. eu-west-1"""
    _region_name(value)
    supported = supported_regions()
    if value not in supported:
        raise ValueError(
            "is not a region where AWS publishes the PyTorch images the pipelines and endpoint "
            f"run (the template could not be deployed there). Allowed: {', '.join(supported)}"
        )
    return value


_region.pattern = _REGION  # type: ignore[attr-defined]
_region.choices = supported_regions  # type: ignore[attr-defined]
_email = _matches(
    _EMAIL,
    "e-mail address (ASCII)",
    "must be an e-mail address like team@example.com (ASCII letters, digits and "
    "!#$%&'*+/=?^_`{|}~.- before the @, a domain name after it)",
)
_project_prefix = _matches(
    _PREFIX,
    "2-12 lowercase letters or digits, starting with a letter",
    "must be 2-12 lowercase letters or digits, starting with a letter",
)
_environment_name = _matches(
    _ENV_NAME,
    "2-10 lowercase letters or digits, starting with a letter",
    "environment names must be 2-10 lowercase letters or digits, starting with a letter",
)


def schedule_seconds(expression: str) -> int:
    """Seconds between two runs of ``rate(N unit)``; ValueError for any other expression."""
    match = _RATE.fullmatch(expression)
    if not match or (match.group(1) == "1") == (match.group(3) == "s"):
        raise ValueError(
            "must be a fixed EventBridge Scheduler rate of at most a day: rate(1 hour), "
            "rate(30 minutes), rate(6 hours) or rate(1 day) (each run reads the capture since the "
            "previous one, so cron and multi-day rates are not supported)"
        )
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def _schedule(value: str) -> str:
    """rate(N minutes), rate(N hours) or rate(1 day), at most a day"""
    if schedule_seconds(value) > MAX_SCHEDULE_SECONDS:
        raise ValueError(
            "is longer than a day. Allowed: at most a day, e.g. rate(24 hours), rate(1440 minutes) "
            "or rate(1 day) (each run reads at most the last 24 hours of capture, so the rest of a "
            "longer interval would never be monitored)"
        )
    return value


_schedule.pattern = _RATE  # type: ignore[attr-defined]  # the syntax; the day limit is checked above


def _distinct_emails(emails: list[str]) -> list[str]:
    """e-mail addresses, each at most once"""
    seen: dict[str, str] = {}
    for email in emails:
        first = seen.get(email.lower())
        if first is None:
            seen[email.lower()] = email
        else:
            raise ValueError(
                f"lists {email!r} again (already as {first!r}; addresses are compared "
                "case-insensitively): list each address at most once"
            )
    return emails


def _cross_field(fields: dict[str, Any], rule: str) -> PydanticCustomError:
    """An error about several fields together: names each with its value, then the rule."""
    involved = ", ".join(f"{name} = {value!r}" for name, value in fields.items())
    return PydanticCustomError("cross_field", "{message}", {"message": f"{involved}: {rule}"})


InstanceType = Annotated[str, AfterValidator(_instance_type)]


def _in_table(allowed: tuple[str, ...], kind: str):
    """Only types the instance table knows: preprocess's plan needs their memory and disk."""

    def check(value: str) -> str:
        if value not in allowed:
            raise ValueError(
                f"must be a {kind} type from contract/instance_types.py "
                f"({', '.join(allowed)})"
            )
        return value

    check.__doc__ = f"one of {', '.join(allowed)}"
    return check


ProcessingInstanceType = Annotated[
    str, AfterValidator(_instance_type), AfterValidator(_in_table(PROCESSING_TYPES, "processing"))
]
TrainingInstanceType = Annotated[
    str, AfterValidator(_instance_type), AfterValidator(_in_table(TRAINING_TYPES, "training"))
]
AccountId = Annotated[str, AfterValidator(_account)]
Region = Annotated[str, AfterValidator(_region)]
Email = Annotated[str, AfterValidator(_email)]
ScheduleExpression = Annotated[str, AfterValidator(_schedule)]


class _Strict(BaseModel):
    # strict: "2" is not 2 and "true" is not True in cdk.json; forbid: a misspelt key is an error,
    # not a silently ignored setting.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class TrainingSettings(_Strict):
    """The training pipeline: instances, the model to train, and the gate to the registry."""

    enabled: bool = Field(
        True,
        description="Deploy the training pipeline; false: the environment only receives promoted models.",
    )
    processing_instance_type: ProcessingInstanceType = Field(
        "ml.m5.xlarge", description="CPU instance for preprocessing and evaluation."
    )
    instance_type: TrainingInstanceType = Field(
        "ml.g4dn.xlarge", description="GPU instance for the training step."
    )
    instance_count: int = Field(1, ge=1, le=16, description="More than 1 trains data-parallel.")
    use_spot: bool = Field(False, description="Managed spot training with checkpoints.")
    max_runtime_seconds: int = Field(
        4 * 3600, ge=600, le=5 * 24 * 3600, description="Training job time limit (spot waits included)."
    )
    backbone: Literal[
        "resnet18", "resnet50", "efficientnet_b0", "mobilenet_v3_small", "mobilenet_v3_large",
        "efficientnet_lite0",
    ] = Field("resnet18", description="Image backbone, fine-tuned from ImageNet weights when given.")
    epochs: int = Field(10, ge=1, le=500, description="Maximum epochs (early stopping may end sooner).")
    batch_size: int = Field(64, ge=1, le=4096, description="Images per step on each GPU.")
    learning_rate: float = Field(0.001, gt=0, le=1, description="Peak learning rate.")
    image_size: int = Field(224, ge=32, le=1024, description="Model input size in pixels (square).")
    accuracy_threshold: float = Field(
        0.7, gt=0, le=1, description="Minimum test accuracy for a model to be registered."
    )
    network_isolation: bool = Field(True, description="Training containers get no network.")
    inter_container_encryption: bool = Field(
        True, description="Encrypt traffic between training instances."
    )


class EndpointSettings(_Strict):
    """The real-time (or serverless) endpoint the deploy Lambda creates on approval."""

    kind: Literal["realtime", "serverless"] = Field(
        "realtime", description="serverless is cheap for dev but has no data capture."
    )
    instance_type: InstanceType = Field("ml.m5.large", description="Endpoint instance type.")
    initial_instance_count: int = Field(1, ge=1, le=20, description="Instances at creation.")
    min_instances: int = Field(1, ge=1, le=20, description="Autoscaling minimum.")
    max_instances: int = Field(2, ge=1, le=100, description="Autoscaling maximum.")
    target_invocations_per_instance: int = Field(
        100, ge=1, le=100_000, description="Autoscaling target (invocations per minute)."
    )
    serverless_memory_mb: Literal[1024, 2048, 3072, 4096, 5120, 6144] = Field(
        3072, description="Memory of a serverless endpoint."
    )
    serverless_max_concurrency: int = Field(
        5, ge=1, le=200, description="Concurrent invocations of a serverless endpoint."
    )
    data_capture_percent: int = Field(
        100, ge=0, le=100, description="Share of requests captured for monitoring."
    )
    canary_percent: int = Field(
        10, ge=1, le=50, description="Traffic share of the new version during the canary."
    )
    canary_wait_minutes: int = Field(
        10, ge=0, le=60, description="Canary bake time before all traffic shifts (API maximum 1 hour)."
    )
    termination_wait_minutes: int = Field(
        5, ge=0, le=60, description="Old fleet kept after the shift, for fast rollback."
    )
    keep_versions: int = Field(
        3, ge=1, le=20, description="Endpoint configs and models kept after a deployment."
    )
    network_isolation: bool = Field(
        True, description="The serving container gets no network (the model artifact is self-contained)."
    )

    @model_validator(mode="after")
    def _instances_in_order(self) -> EndpointSettings:
        if self.min_instances > self.max_instances:
            raise _cross_field(
                {"min_instances": self.min_instances, "max_instances": self.max_instances},
                "min_instances must not exceed max_instances",
            )
        if not self.min_instances <= self.initial_instance_count <= self.max_instances:
            raise _cross_field(
                {
                    "initial_instance_count": self.initial_instance_count,
                    "min_instances": self.min_instances,
                    "max_instances": self.max_instances,
                },
                "initial_instance_count must lie between min_instances and max_instances",
            )
        return self


class MonitoringSettings(_Strict):
    """Scheduled data-quality and model-quality monitoring, alarms and retraining."""

    enabled: bool = Field(True, description="Run the monitoring schedules.")
    schedule: ScheduleExpression = Field("rate(1 hour)", description="How often the monitors run.")
    instance_type: InstanceType = Field("ml.m5.large", description="Monitoring job instance type.")
    alarm_emails: Annotated[list[Email], AfterValidator(_distinct_emails)] = Field(
        default_factory=list, description="Addresses subscribed to the alerts topic."
    )
    psi_threshold: float = Field(
        0.2, gt=0, le=10, description="Population stability index above which a feature drifts."
    )
    ks_threshold: float = Field(
        0.2, gt=0, le=1, description="Kolmogorov-Smirnov distance above which a feature drifts."
    )
    prediction_distance_threshold: float = Field(
        0.2, gt=0, le=1, description="L-infinity distance of predicted-breed shares that counts as drift."
    )
    accuracy_threshold: float = Field(
        0.7, gt=0, le=1, description="Live accuracy (against ground truth) that raises an alarm."
    )
    ground_truth_delay_hours: int = Field(
        0,
        ge=0,
        le=168,
        description="Model quality judges predictions this many hours old, so late labels count.",
    )
    retrain_on_drift: bool = Field(True, description="Start the training pipeline on a drift alarm.")
    retrain_min_interval_hours: int = Field(
        24, ge=1, le=24 * 30, description="At most one drift-triggered retraining per this many hours."
    )


# CloudWatch keeps an alarm's history for two weeks: the alarm gate of a promotion cannot look
# further back than that.
ALARM_HISTORY_HOURS = 14 * 24


class PromotionSettings(_Strict):
    """Where this environment's models come from, and the gates a version must pass there."""

    source: Annotated[str, AfterValidator(_environment_name)] = Field(
        description="Environment whose registered versions are promoted into this one."
    )
    min_hours_live: int = Field(
        24,
        ge=0,
        le=ALARM_HISTORY_HOURS,
        description="Hours the version must have served the source's endpoint, with no alarm in ALARM "
        "(CloudWatch keeps alarm history two weeks).",
    )
    approve: bool = Field(
        False,
        description="Promoted versions arrive Approved (and deploy at once); false: PendingManualApproval.",
    )
    live_accuracy_gate: bool = Field(
        True,
        description="Require the source's live accuracy (ground truth) at or above this environment's "
        "monitoring.accuracy_threshold.",
    )
    min_labelled_records: int = Field(
        100,
        ge=1,
        le=10_000_000,
        description="Labelled records the source must have judged for the accuracy gate to judge.",
    )
    require_labels: bool = Field(
        False,
        description="Fewer labelled records than min_labelled_records fail the accuracy gate "
        "(false: it is reported as not judged and passes).",
    )


class EnvironmentSettings(_Strict):
    """One deployable environment (dev, staging, prod)."""

    account: AccountId | None = Field(
        None, description="Deploy target account; absent means environment-agnostic synth."
    )
    region: Region | None = Field(None, description="Deploy target region; set with account.")
    removal_policy: Literal["destroy", "retain"] = Field(
        "retain", description="'destroy' empties and deletes buckets with the stack (dev only)."
    )
    data_retention_days: int = Field(
        90, ge=1, le=3650, description="Capture and monitoring outputs expire after this."
    )
    noncurrent_version_retention_days: int = Field(
        30, ge=1, le=3650, description="Overwritten or deleted object versions expire after this."
    )
    log_retention_days: Literal[
        1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
        2922, 3288, 3653,
    ] = Field(90, description="CloudWatch Logs retention of the project's log groups.")
    training: TrainingSettings = TrainingSettings()
    endpoint: EndpointSettings = EndpointSettings()
    monitoring: MonitoringSettings = MonitoringSettings()
    promotion: PromotionSettings | None = Field(
        None, description="Receive models promoted from another environment (keys below); null: none."
    )

    @model_validator(mode="after")
    def _consistent(self) -> EnvironmentSettings:
        if not self.training.enabled and self.promotion is None:
            raise _cross_field(
                {"training.enabled": False, "promotion": None},
                "an environment without training gets models only by promotion: set "
                "promotion.source, or training.enabled to true",
            )
        if (
            not self.training.enabled
            and self.monitoring.retrain_on_drift
            and "retrain_on_drift" in self.monitoring.model_fields_set
        ):
            raise _cross_field(
                {"training.enabled": False, "monitoring.retrain_on_drift": True},
                "there is no training pipeline to start on drift: set monitoring.retrain_on_drift "
                "to false (or leave it out), or training.enabled to true",
            )
        if self.endpoint.kind == "serverless" and self.monitoring.enabled:
            raise _cross_field(
                {"endpoint.kind": self.endpoint.kind, "monitoring.enabled": self.monitoring.enabled},
                "a serverless endpoint cannot be monitored: serverless endpoints have no data "
                "capture. Set monitoring.enabled to false or endpoint.kind to 'realtime'",
            )
        if (self.account is None) != (self.region is None):
            raise _cross_field(
                {"account": self.account, "region": self.region},
                "set both account and region, or neither (environment-agnostic)",
            )
        return self


class ProjectSettings(_Strict):
    """All of cdk.json's project context: the name prefix and every environment."""

    project: Annotated[str, AfterValidator(_project_prefix)] = "dogbreeds"
    environments: dict[
        Annotated[str, AfterValidator(_environment_name)], EnvironmentSettings
    ] = Field(min_length=1)

    @model_validator(mode="after")
    def _promotions_possible(self) -> ProjectSettings:
        for env_name, settings in self.environments.items():
            if settings.promotion is not None:
                problem = promotion_problem(env_name, settings, self.environments)
                if problem is not None:
                    raise problem
        return self

    @model_validator(mode="after")
    def _names_fit(self) -> ProjectSettings:
        # Bucket names carry the project, environment, account and region, and S3 allows 63
        # characters; without a pinned region the template may go to any region, so the longest.
        purpose = max(BUCKET_PURPOSES, key=len)
        for env_name, settings in self.environments.items():
            names = Names(self.project, env_name)
            region = settings.region or LONGEST_REGION
            length = len(names.bucket("0" * 12, region, purpose))
            if length > MAX_BUCKET_NAME_LENGTH:
                spare = len(names.base) - (length - MAX_BUCKET_NAME_LENGTH)
                unpinned = "" if settings.region else " (no region is pinned, so the longest counts)"
                raise _cross_field(
                    {"project": self.project, "environment": env_name, "region": settings.region},
                    f"bucket {names.bucket('<account>', region, purpose)!r} would be {length} "
                    f"characters{unpinned}; S3 allows {MAX_BUCKET_NAME_LENGTH}. Allowed: project and "
                    f"environment name together (with the hyphen) at most {spare} characters",
                )
        return self


def promotion_chain(env_name: str, sources: dict[str, str | None]) -> list[str]:
    """``env_name`` and the environments it promotes from, nearest first; a cycle ends with the
    first environment seen again."""
    chain = [env_name]
    while (source := sources.get(chain[-1])) is not None:
        chain.append(source)
        if source in chain[:-1]:
            break
    return chain


def promotion_problem(
    env_name: str, settings: EnvironmentSettings, environments: dict[str, EnvironmentSettings]
) -> PydanticCustomError | None:
    """Why ``env_name``'s promotion could never happen, as an error naming the keys; or None."""
    promotion = settings.promotion
    assert promotion is not None
    key = f"environments.{env_name}.promotion.source"
    if promotion.source == env_name:
        return _cross_field({key: promotion.source}, "an environment cannot promote from itself")
    source = environments.get(promotion.source)
    if source is None:
        return _cross_field(
            {key: promotion.source},
            f"no such environment; defined: {', '.join(sorted(environments))}",
        )
    sources = {name: e.promotion.source if e.promotion else None for name, e in environments.items()}
    chain = promotion_chain(env_name, sources)
    if chain[-1] in chain[:-1]:
        return _cross_field(
            {key: promotion.source},
            f"promotion sources form a cycle ({' -> '.join(chain)}): some environment must train",
        )
    if promotion.live_accuracy_gate and not source.monitoring.enabled:
        return _cross_field(
            {
                f"environments.{env_name}.promotion.live_accuracy_gate": True,
                f"environments.{promotion.source}.monitoring.enabled": False,
            },
            "the source measures no live accuracy without monitoring: enable its monitoring or "
            "set live_accuracy_gate to false",
        )
    if promotion.min_hours_live > source.data_retention_days * 24:
        return _cross_field(
            {
                f"environments.{env_name}.promotion.min_hours_live": promotion.min_hours_live,
                f"environments.{promotion.source}.data_retention_days": source.data_retention_days,
            },
            "the source keeps its capture and monitoring reports (the gates' evidence) for less "
            "than that: lower min_hours_live or raise the source's data_retention_days",
        )
    if settings.region and source.region and settings.region != source.region:
        return _cross_field(
            {
                f"environments.{env_name}.region": settings.region,
                f"environments.{promotion.source}.region": source.region,
            },
            "promotion copies a model within one region (its image URI and container "
            "environment are regional): use the same region",
        )
    return None


def cross_account(target: EnvironmentSettings, source: EnvironmentSettings) -> bool:
    """Promotion between two pinned, different accounts: the stacks then carry the grants. An
    environment-agnostic side is taken to deploy to the same account as the other."""
    return bool(target.account and source.account and target.account != source.account)


@dataclass(frozen=True)
class PromotionPeers:
    """The environments one environment exchanges models with: where it promotes from, and
    which environments promote from it."""

    source: tuple[str, EnvironmentSettings] | None
    targets: tuple[tuple[str, EnvironmentSettings], ...]


class SettingsError(ValueError):
    """Bad cdk.json settings; the message lists every problem with key, value and what is allowed."""


def _format_location(location: tuple[Any, ...]) -> str:
    # A key that is not a plain name (a bad environment name, say) is shown quoted.
    parts = [str(part) for part in location if not str(part).startswith("function-")]
    return ".".join(part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else repr(part) for part in parts)


def _describe(error: dict[str, Any]) -> str:
    where = _format_location(error["loc"]) or "(top level)"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "missing":
        return f"{where}: required key is missing"
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown key (value {error['input']!r}); check the spelling"
    if error["loc"][-1:] == ("[key]",):  # the key itself is bad: name its parent and the key
        where = _format_location(error["loc"][:-2]) or "(top level)"
        return f"{where}: key {error['input']!r}: {message}"
    if error["type"] == "cross_field":  # the message names the fields involved and their values
        return f"{where}: {message}" if error["loc"] else message
    return f"{where} = {error['input']!r}: {message}"


def parse_project_settings(context: dict[str, Any]) -> ProjectSettings:
    """Validate the whole project context; raise SettingsError listing every problem."""
    try:
        return ProjectSettings.model_validate(context)
    except ValidationError as error:
        problems = "\n  ".join(_describe(item) for item in error.errors())
        raise SettingsError(f"Invalid settings in cdk.json context:\n  {problems}") from None


def load_environment(context: dict[str, Any], env_name: str | None) -> tuple[str, EnvironmentSettings]:
    """Pick and validate one environment, e.g. from ``-c env=prod``. Returns (prefix, settings)."""
    name = env_name or DEFAULT_ENVIRONMENT
    project, settings, _ = _load_connected(context, _raw_environments(context, name), name)
    return project, settings


def _raw_environments(context: dict[str, Any], name: str) -> dict[str, Any]:
    raw_environments = context.get("environments")
    if not isinstance(raw_environments, dict) or not raw_environments:
        raise SettingsError(
            "cdk.json context has no 'environments' block: add one object per environment, "
            'e.g. "environments": {"dev": {}}'
        )
    if name not in raw_environments:
        known = ", ".join(sorted(raw_environments))
        raise SettingsError(f"Unknown environment {name!r} (-c env={name}); defined in cdk.json: {known}")
    return raw_environments


def load_environment_with_peers(
    context: dict[str, Any], env_name: str | None
) -> tuple[str, EnvironmentSettings, PromotionPeers]:
    """``load_environment``, and the environments it promotes from and to (validated too)."""
    name = env_name or DEFAULT_ENVIRONMENT
    project, settings, environments = _load_connected(context, _raw_environments(context, name), name)
    source = (
        (settings.promotion.source, environments[settings.promotion.source])
        if settings.promotion
        else None
    )
    targets = tuple(
        (other, e)
        for other, e in sorted(environments.items())
        if e.promotion is not None and e.promotion.source == name
    )
    return project, settings, PromotionPeers(source, targets)


def _raw_source(block: Any) -> str | None:
    promotion = block.get("promotion") if isinstance(block, dict) else None
    source = promotion.get("source") if isinstance(promotion, dict) else None
    return source if isinstance(source, str) else None


def _load_connected(
    context: dict[str, Any], raw_environments: dict[str, Any], name: str
) -> tuple[str, EnvironmentSettings, dict[str, EnvironmentSettings]]:
    # Only the chosen environment is validated, with the environments it exchanges models with
    # (its chain of sources and the environments that promote from it), so a half-written
    # unrelated block does not block it.
    sources = {env: _raw_source(block) for env, block in raw_environments.items()}
    chain = promotion_chain(name, sources)
    for target, source in zip(chain, chain[1:], strict=False):
        if source not in raw_environments:
            raise SettingsError(
                f"Invalid settings in cdk.json context:\n  environments.{target}.promotion.source = "
                f"{source!r}: no such environment; defined: {', '.join(sorted(raw_environments))}"
            )
    connected = list(chain)
    connected += [env for env, source in sources.items() if source == name]
    project = parse_project_settings(
        {
            **({"project": context["project"]} if "project" in context else {}),
            "environments": {env: raw_environments[env] for env in dict.fromkeys(connected)},
        }
    )
    settings = project.environments[name]
    if name in PROTECTED_ENVIRONMENTS and settings.removal_policy == "destroy":
        raise SettingsError(
            f"environments.{name}.removal_policy = 'destroy' is not allowed for {name}: its data "
            f"must outlive the stack. Allowed: 'retain'"
        )
    return project.project, settings, dict(project.environments)
