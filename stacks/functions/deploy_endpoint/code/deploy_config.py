"""The deploy Lambda's settings, read once from the environment variables the deployment stack sets.

The Lambda ships without the project's ``stacks`` package (its asset is this folder only), so every
name and setting it needs arrives as an environment variable. ``ENVIRONMENT_VARIABLES`` is the one list
of them; the stack's test checks that the stack sets exactly these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

from contract import environment_variables

ENDPOINT_KINDS = ("realtime", "serverless")


class ConfigError(ValueError):
    """An environment variable is missing or malformed: the function is deployed wrongly."""


@dataclass(frozen=True)
class DeployConfig:
    endpoint_name: str
    model_package_group: str
    model_prefix: str
    endpoint_config_prefix: str
    variant_name: str
    execution_role_arn: str
    kms_key_arn: str
    capture_s3_uri: str
    endpoint_kind: str
    instance_type: str
    initial_instance_count: int
    min_instances: int
    max_instances: int
    target_invocations_per_instance: int
    serverless_memory_mb: int
    serverless_max_concurrency: int
    data_capture_percent: int
    canary_percent: int
    canary_wait_seconds: int
    termination_wait_seconds: int
    keep_versions: int
    network_isolation: bool
    rollback_alarms: tuple[str, ...]
    scaling_policy_name: str
    metric_namespace: str

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> DeployConfig:
        """Parse every setting; raise ConfigError naming each missing or malformed variable."""
        values: dict[str, object] = {}
        problems: list[str] = []
        for field in fields(cls):
            name = env_name(field.name)
            raw = environ.get(name)
            if raw is None or raw == "":
                problems.append(f"{name} is not set")
                continue
            try:
                values[field.name] = _convert(field.type, raw)
            except ValueError as error:
                problems.append(f"{name}={raw!r}: {error}")
        if not problems and values["endpoint_kind"] not in ENDPOINT_KINDS:
            problems.append(
                f"{env_name('endpoint_kind')}={values['endpoint_kind']!r}: allowed are "
                f"{', '.join(ENDPOINT_KINDS)}"
            )
        if problems:
            raise ConfigError(
                "deploy Lambda environment is incomplete (the deployment stack sets these): "
                + "; ".join(problems)
            )
        return cls(**values)  # type: ignore[arg-type]


def env_name(field_name: str) -> str:
    return f"{environment_variables.DEPLOY_PREFIX}{field_name.upper()}"


# Every variable the function reads: contract.environment_variables.DEPLOY_FUNCTION (a test checks).
ENVIRONMENT_VARIABLES = tuple(env_name(field.name) for field in fields(DeployConfig))


def _convert(type_name: object, raw: str) -> object:
    # `from __future__ import annotations` keeps field types as strings.
    if type_name == "int":
        try:
            return int(raw)
        except ValueError:
            raise ValueError("must be a whole number") from None
    if type_name == "bool":
        if raw not in ("true", "false"):
            raise ValueError("must be 'true' or 'false'")
        return raw == "true"
    if type_name == "tuple[str, ...]":
        items = tuple(item for item in raw.split(",") if item)
        if not items:
            raise ValueError("must be a comma-separated list with at least one name")
        return items
    return raw
