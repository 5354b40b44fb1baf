"""Property: any settings the model accepts build an app that synthesises, passes cdk-nag and
cfn-lint, and names every resource within AWS's limits.

The settings are generated from the model itself (each field's range, choices and pattern), so a
new field or a widened range is exercised without touching this file. Each example builds the app
in-process and synthesises it into a temporary folder (cdk-nag runs there), lints the templates
and checks the names as CloudFormation would resolve them; a handful of examples, derandomized,
keeps it reproducible and bounded.
"""

from __future__ import annotations

import ipaddress
import re
import subprocess
import sys
import tempfile
import types
import typing
from pathlib import Path
from typing import Any

from cdk_helpers import build_app, project_context
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from lambda_code import function_module
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from repo_paths import REPO_ROOT

from contract.naming import Names
from contract.settings import (
    LONGEST_REGION,
    EnvironmentSettings,
    ProjectSettings,
    SettingsError,
    load_environment,
)
from dogbreeds.cloud_assembly import CloudAssembly

DIGEST_LENGTH = function_module("deploy_endpoint", "deploy_names").DIGEST_LENGTH

# --- strategies derived from the model --------------------------------------------------------


def _validators(metadata: list[Any]) -> list[Any]:
    return [item.func for item in metadata if callable(getattr(item, "func", None))]


def _accepted_by(validators: list[Any], value: Any) -> bool:
    try:
        for validator in validators:
            validator(value)
    except ValueError:
        return False
    return True


def _bounds(metadata: list[Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for item in metadata:
        for name in ("ge", "gt", "le", "lt"):
            if getattr(item, name, None) is not None:
                found[name] = getattr(item, name)
    return found


def _strategy(annotation: Any, metadata: list[Any]) -> st.SearchStrategy:
    """Values of ``annotation`` that its constraints (``metadata``) allow."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        base, *inner = typing.get_args(annotation)
        return _strategy(base, [*inner, *metadata])
    if origin is typing.Literal:
        return st.sampled_from(typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return st.one_of(st.none(), *(_strategy(option, metadata) for option in options))
    if origin is list:
        (item,) = typing.get_args(annotation)
        items = st.lists(_strategy(item, []), max_size=3)
        return items.filter(lambda value: _accepted_by(_validators(metadata), value))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _model_strategy(annotation)
    if annotation is bool:
        return st.booleans()
    bounds = _bounds(metadata)
    if annotation is int:
        low = bounds["ge"] if "ge" in bounds else bounds["gt"] + 1 if "gt" in bounds else None
        high = bounds["le"] if "le" in bounds else bounds["lt"] - 1 if "lt" in bounds else None
        return st.integers(min_value=low, max_value=high)
    if annotation is float:
        return st.floats(
            min_value=bounds.get("ge", bounds.get("gt")),
            max_value=bounds.get("le", bounds.get("lt")),
            exclude_min="gt" in bounds,
            exclude_max="lt" in bounds,
            allow_nan=False,
            allow_infinity=False,
        )
    if annotation is str:
        validators = _validators(metadata)
        choices = [v.choices for v in validators if callable(getattr(v, "choices", None))]
        if choices:  # a closed set (regions): sample it rather than filter random matches
            return st.sampled_from(choices[0]())
        patterns = [v.pattern for v in validators if getattr(v, "pattern", None) is not None]
        assert patterns, f"no pattern to generate strings from: {metadata}"
        return st.from_regex(patterns[0], fullmatch=True).filter(
            lambda value: _accepted_by(validators, value)
        )
    raise NotImplementedError(f"no strategy for {annotation!r}")


def _field_strategy(field: FieldInfo) -> st.SearchStrategy:
    return _strategy(field.annotation, list(field.metadata))


def _model_strategy(model: type[BaseModel]) -> st.SearchStrategy[dict[str, Any]]:
    """cdk.json blocks for ``model``: any subset of its keys (the rest default), each with an
    allowed value, that the model accepts as a whole (its cross-field rules)."""

    def accepted(block: dict[str, Any]) -> bool:
        try:
            model.model_validate(block)
        except ValidationError:
            return False
        return True

    optional = {name: _field_strategy(field) for name, field in model.model_fields.items()}
    return st.fixed_dictionaries({}, optional=optional).filter(accepted)


_PROJECT = ProjectSettings.model_fields["project"]
_ENV_NAME_KEY = typing.get_args(ProjectSettings.model_fields["environments"].annotation)[0]


def _loadable(case: tuple[str, str, dict[str, Any]]) -> bool:
    project, env_name, block = case
    try:
        load_environment({"project": project, "environments": {env_name: block}}, env_name)
    except SettingsError:
        return False
    return True


CASES = st.tuples(
    _field_strategy(_PROJECT),
    _strategy(_ENV_NAME_KEY, []),
    _model_strategy(EnvironmentSettings),
).filter(_loadable)

# --- AWS's limits on the names -----------------------------------------------------------------

# (resource type, name property, most characters); from each API's reference (S3's bucket naming
# rules; IAM CreateRole/PutRolePolicy; SageMaker CreatePipeline, whose name also becomes the
# display name and executions' names and is refused over 82 characters in practice although the
# API model says 256; CreateModelPackageGroup; Lambda CreateFunction; CloudWatch PutMetricAlarm;
# SNS CreateTopic; EventBridge PutRule; Scheduler CreateSchedule).
NAME_LIMITS = [
    ("AWS::S3::Bucket", "BucketName", 63),
    ("AWS::IAM::Role", "RoleName", 64),
    ("AWS::IAM::Policy", "PolicyName", 128),
    ("AWS::SageMaker::Pipeline", "PipelineName", 82),
    ("AWS::SageMaker::Pipeline", "PipelineDisplayName", 82),
    ("AWS::SageMaker::ModelPackageGroup", "ModelPackageGroupName", 63),
    ("AWS::Lambda::Function", "FunctionName", 64),
    ("AWS::CloudWatch::Alarm", "AlarmName", 255),
    ("AWS::CloudWatch::Dashboard", "DashboardName", 255),
    ("AWS::SNS::Topic", "TopicName", 256),
    ("AWS::Events::Rule", "Name", 64),
    ("AWS::Scheduler::Schedule", "Name", 64),
]
# SageMaker endpoint, model and endpoint-config names (created by the deploy Lambda).
SAGEMAKER_NAME_LIMIT = 63
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# A generous model package version for the deploy Lambda's names: <prefix>-v<version>-<digest>.
_LARGE_VERSION = 99999


def _bucket_name_problem(name: str) -> str | None:
    if not _BUCKET_NAME.fullmatch(name) or ".." in name:
        return "3-63 lowercase letters, digits, dots and hyphens, starting and ending alphanumeric"
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return None
    return "formatted as an IP address"


def _name_problems(assembly: CloudAssembly, names: Names) -> list[str]:
    problems = []
    for resource_type, prop, limit in NAME_LIMITS:
        for resource in assembly.resources(resource_type):
            name = resource.properties.get(prop)
            if name is None:
                continue  # CloudFormation generates a name that fits
            where = f"{resource.stack}/{resource.logical_id} {prop} {name!r}"
            if len(name) > limit:
                problems.append(f"{where}: {len(name)} characters, AWS allows {limit}")
            if resource_type == "AWS::S3::Bucket" and (problem := _bucket_name_problem(name)):
                problems.append(f"{where}: {problem}")
    digest = "0" * DIGEST_LENGTH
    for name in (
        names.endpoint,
        f"{names.model_prefix}-v{_LARGE_VERSION}-{digest}",
        f"{names.endpoint_config_prefix}-v{_LARGE_VERSION}-{digest}",
    ):
        if len(name) > SAGEMAKER_NAME_LIMIT:
            problems.append(f"SageMaker name {name!r}: {len(name)} characters, AWS allows 63")
    return problems


def _cfn_lint(templates: list[Path]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), "--format", "parseable", *map(str, templates)],
        cwd=REPO_ROOT,  # picks up .cfnlintrc.yaml and its reasoned ignores
        capture_output=True,
        text=True,
    )


# --- the property ------------------------------------------------------------------------------

# Project prefix and environment name at the longest the model accepts together (22 characters).
LONG_PREFIX, LONGEST_ENV_NAME = "a" * 11, "b" * 10


@settings(
    max_examples=5,
    deadline=None,
    derandomize=True,  # the same examples on every run and machine
    database=None,
    # No shrinking: each example is a synth of seconds; a failure is reported as generated.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(CASES)
# The longest names accepted, environment-agnostic (the region is unknown until deploy).
@example((LONG_PREFIX, LONGEST_ENV_NAME, {}))
# Pinned to a long commercial region: the names are checked with that region.
@example(("c" * 12, "d" * 9, {"account": "123456789012", "region": "ap-southeast-1"}))
def test_accepted_settings_synthesise_lint_clean_within_name_limits(case):
    project, env_name, block = case
    # cdk.json's context (its feature flags too), with these settings as the only environment.
    context = {**project_context(), "project": project, "environments": {env_name: block}}
    _, parsed = load_environment(context, env_name)
    with tempfile.TemporaryDirectory() as outdir:
        app, stacks = build_app(env_name, context=context, outdir=outdir)
        app.synth()  # cdk-nag's AwsSolutions checks fail synth on any unacknowledged finding
        templates = sorted(Path(outdir).glob("*.template.json"))
        assert len(templates) == 4, templates
        lint = _cfn_lint(templates)
        # cfn-lint exit codes are bit flags: 2 = error, 4 = warning, 8 = informational.
        assert lint.returncode == 0, lint.stdout + lint.stderr
        # An environment-agnostic template may be deployed to any region: check the longest.
        assembly = CloudAssembly.load(
            Path(outdir),
            account=parsed.account or "123456789012",
            region=parsed.region or LONGEST_REGION,
        )
        assert _name_problems(assembly, stacks.names) == []


def test_the_strategies_reach_every_field():
    """Every settings field has a strategy (a new field type fails here, not silently)."""
    for model in (EnvironmentSettings, *(type(v) for v in EnvironmentSettings().__dict__.values()
                                         if isinstance(v, BaseModel))):
        for name, field in model.model_fields.items():
            assert _field_strategy(field) is not None, f"{model.__name__}.{name}"
