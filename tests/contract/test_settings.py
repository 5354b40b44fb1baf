"""Settings from cdk.json: the shipped environments are valid, and each kind of bad input fails
with a message naming the key, the value and what is allowed."""

from __future__ import annotations

import re

import pytest
from cdk_helpers import project_context

from contract.settings import (
    LONGEST_REGION,
    SettingsError,
    load_environment,
    parse_project_settings,
    supported_regions,
)


def test_every_shipped_environment_is_valid():
    context = project_context()
    parsed = parse_project_settings(
        {"project": context["project"], "environments": context["environments"]}
    )
    assert set(parsed.environments) == {"dev", "staging", "prod"}
    assert parsed.environments["prod"].removal_policy == "retain"
    assert parsed.environments["dev"].removal_policy == "destroy"


def test_default_environment_is_dev():
    prefix, settings = load_environment(project_context(), None)
    assert prefix == "dogbreeds"
    assert settings.training.epochs == project_context()["environments"]["dev"]["training"]["epochs"]


def test_unknown_environment_lists_the_known_ones():
    with pytest.raises(SettingsError, match=r"Unknown environment 'qa'.*dev, prod, staging"):
        load_environment(project_context(), "qa")


def test_missing_environments_block():
    with pytest.raises(SettingsError, match="no 'environments' block"):
        load_environment({"project": "dogbreeds"}, "dev")


def _error_for(env_block: dict, env: str = "dev") -> str:
    context = project_context()
    context["environments"][env] = env_block
    with pytest.raises(SettingsError) as caught:
        load_environment(context, env)
    return str(caught.value)


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        # bad instance type pattern: names key, value and the allowed shape
        (
            {"training": {"instance_type": "g4dn.xlarge"}},
            r"environments\.dev\.training\.instance_type = 'g4dn\.xlarge': must be a SageMaker "
            r"instance type like ml\.g4dn\.xlarge",
        ),
        # negative retention
        (
            {"data_retention_days": -5},
            r"environments\.dev\.data_retention_days = -5: Input should be greater than or equal to 1",
        ),
        # mistyped value: a string where a number belongs is not coerced
        (
            {"training": {"epochs": "10"}},
            r"environments\.dev\.training\.epochs = '10': Input should be a valid integer",
        ),
        # misspelt key is not silently ignored
        (
            {"trainng": {}},
            r"environments\.dev\.trainng: unknown key",
        ),
        # enumerated choice lists what is allowed
        (
            {"endpoint": {"kind": "batch"}},
            r"environments\.dev\.endpoint\.kind = 'batch': Input should be 'realtime' or 'serverless'",
        ),
        (
            {"removal_policy": "delete"},
            r"removal_policy = 'delete': Input should be 'destroy' or 'retain'",
        ),
        (
            {"monitoring": {"schedule": "every hour"}},
            r"monitoring\.schedule = 'every hour': must be a fixed EventBridge Scheduler rate",
        ),
        (
            {"monitoring": {"schedule": "cron(0 * * * ? *)"}},
            r"cron and multi-day rates are not supported",
        ),
        (
            {"monitoring": {"schedule": "rate(0 minutes)"}},
            r"must be a fixed EventBridge Scheduler rate",
        ),
        (
            {"endpoint": {"canary_wait_minutes": 90}},
            r"canary_wait_minutes = 90: Input should be less than or equal to 60",
        ),
        (
            {"monitoring": {"alarm_emails": ["not-an-address"]}},
            r"monitoring\.alarm_emails\.0 = 'not-an-address': must be an e-mail address",
        ),
        (
            {"account": "1234", "region": "eu-west-1"},
            r"account = '1234': must be a 12-digit AWS account id",
        ),
        (
            {"account": "123456789012"},
            r"set both account and region, or neither",
        ),
        (
            {"training": {"accuracy_threshold": 1.5}},
            r"training\.accuracy_threshold = 1\.5: Input should be less than or equal to 1",
        ),
        (
            {"endpoint": {"min_instances": 3, "max_instances": 2, "initial_instance_count": 3}},
            r"min_instances = 3, max_instances = 2: min_instances must not exceed max_instances",
        ),
        (
            {"endpoint": {"kind": "serverless"}, "monitoring": {"enabled": True}},
            r"serverless endpoints have no data capture",
        ),
        (
            {"log_retention_days": 10},
            r"log_retention_days = 10: Input should be 1, 3, 5, 7, 14",
        ),
    ],
)
def test_bad_input_is_named_with_value_and_allowed(block, expected):
    message = _error_for(block)
    assert re.search(expected, message), message


def test_every_problem_is_reported_at_once():
    message = _error_for({"data_retention_days": 0, "training": {"instance_count": 0}})
    assert "data_retention_days" in message
    assert "training.instance_count" in message


def test_prod_may_not_destroy_its_data():
    message = _error_for({"removal_policy": "destroy"}, env="prod")
    assert "environments.prod.removal_policy = 'destroy' is not allowed" in message
    assert "Allowed: 'retain'" in message


def test_serverless_without_monitoring_is_allowed():
    context = project_context()
    context["environments"]["dev"] = {
        "endpoint": {"kind": "serverless"},
        "monitoring": {"enabled": False},
    }
    # staging promotes from dev: without dev's monitoring it cannot gate on live accuracy.
    context["environments"]["staging"]["promotion"]["live_accuracy_gate"] = False
    _, settings = load_environment(context, "dev")
    assert settings.endpoint.kind == "serverless"


def test_bad_project_prefix():
    context = project_context()
    context["project"] = "Dog Breeds!"
    with pytest.raises(SettingsError, match="project = 'Dog Breeds!': must be 2-12 lowercase"):
        load_environment(context, "dev")


# --- values that used to pass validation and fail later --------------------------------------


@pytest.mark.parametrize(
    "schedule", ["rate(25 hours)", "rate(1000 hours)", "rate(1441 minutes)", "rate(2 days)"]
)
def test_schedule_longer_than_a_day_is_refused(schedule):
    message = _error_for({"monitoring": {"schedule": schedule}})
    assert f"environments.dev.monitoring.schedule = {schedule!r}: " in message, message
    assert "at most a day" in message


@pytest.mark.parametrize(
    "schedule", ["rate(1 minute)", "rate(1440 minutes)", "rate(24 hours)", "rate(1 day)"]
)
def test_schedule_up_to_a_day_is_accepted(schedule):
    context = project_context()
    context["environments"]["dev"]["monitoring"]["schedule"] = schedule
    _, settings = load_environment(context, "dev")
    assert settings.monitoring.schedule == schedule


@pytest.mark.parametrize(
    ("block", "key"),
    [
        ({"endpoint": {"instance_type": "ml.m5.large\n"}}, "endpoint.instance_type"),
        ({"training": {"instance_type": "ml.g4dn.xlarge\n"}}, "training.instance_type"),
        ({"monitoring": {"alarm_emails": ["a@example.com\n"]}}, "monitoring.alarm_emails.0"),
        ({"monitoring": {"schedule": "rate(1 hour)\n"}}, "monitoring.schedule"),
        ({"account": "123456789012\n", "region": "eu-west-1"}, "account"),
        ({"account": "123456789012", "region": "eu-west-1\n"}, "region"),
    ],
)
def test_a_trailing_newline_is_not_a_valid_value(block, key):
    message = _error_for(block)
    assert f"environments.dev.{key} = '" in message and "\\n'" in message, message


def test_a_trailing_newline_in_names_is_refused():
    context = project_context()
    context["project"] = "dogbreeds\n"
    with pytest.raises(SettingsError, match=r"project = 'dogbreeds\\n': must be 2-12 lowercase"):
        load_environment(context, "dev")
    context = project_context()
    context["environments"]["dev\n"] = {}
    with pytest.raises(SettingsError, match=r"environments: key 'dev\\n': environment names must be 2-10"):
        load_environment(context, "dev\n")


def test_duplicate_alarm_emails_are_refused_naming_the_key():
    message = _error_for(
        {"monitoring": {"alarm_emails": ["ops@example.com", "team@example.com", "Ops@Example.com"]}}
    )
    assert "environments.dev.monitoring.alarm_emails" in message, message
    assert "'Ops@Example.com'" in message and "ops@example.com" in message
    assert "each address at most once" in message


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        (
            {"endpoint": {"kind": "serverless"}, "monitoring": {"enabled": True}},
            "environments.dev: endpoint.kind = 'serverless', monitoring.enabled = True: ",
        ),
        (
            {"account": "123456789012"},
            "environments.dev: account = '123456789012', region = None: ",
        ),
        (
            {"endpoint": {"min_instances": 3, "max_instances": 2, "initial_instance_count": 3}},
            "environments.dev.endpoint: min_instances = 3, max_instances = 2: ",
        ),
    ],
)
def test_cross_field_errors_name_only_the_fields_involved(block, expected):
    block = {**block, "data_retention_days": 77, "training": {"epochs": 3}}
    message = _error_for(block)
    assert expected in message, message
    # The rest of the block is not dumped into the message.
    assert "data_retention_days" not in message and "epochs" not in message, message


def _project_error(project: str, env_name: str, block: dict) -> str:
    context = project_context()
    context["project"] = project
    context["environments"] = {env_name: block}
    with pytest.raises(SettingsError) as caught:
        load_environment(context, env_name)
    return str(caught.value)


def test_names_too_long_for_a_bucket_are_refused():
    # 12 + 1 + 10 characters: the access-log bucket would be 64 characters in the longest region.
    message = _project_error("a" * 12, "b" * 10, {})
    assert "project = 'aaaaaaaaaaaa', environment = 'bbbbbbbbbb', region = None: " in message
    assert "would be 64 characters (no region is pinned" in message and "S3 allows 63" in message
    assert "at most 22 characters" in message
    # Pinned to the longest region, the same names are as long.
    block = {"account": "123456789012", "region": LONGEST_REGION}
    message = _project_error("a" * 12, "b" * 10, block)
    assert "region = 'us-isof-south-1': " in message and "would be 64 characters; S3 allows 63" in message


def test_names_that_fit_the_pinned_region_are_accepted():
    context = project_context()
    context["project"] = "a" * 12
    context["environments"] = {"b" * 10: {"account": "123456789012", "region": "eu-west-1"}}
    prefix, settings = load_environment(context, "b" * 10)
    assert prefix == "a" * 12 and settings.region == "eu-west-1"


def test_a_pinned_region_must_have_the_pytorch_images():
    message = _error_for({"account": "123456789012", "region": "tz-gov-east-9"})
    assert "environments.dev.region = 'tz-gov-east-9': is not a region where AWS publishes" in message
    assert "eu-west-1" in message  # the allowed regions are listed


def test_the_longest_region_is_the_longest_the_project_supports():
    assert LONGEST_REGION in supported_regions()
    assert len(LONGEST_REGION) == max(len(region) for region in supported_regions())


@pytest.mark.parametrize("email", ["ops\x94@example.com", "ops team@example.com", "ops@exämple.com"])
def test_email_addresses_are_plain_ascii(email):
    message = _error_for({"monitoring": {"alarm_emails": [email]}})
    assert f"monitoring.alarm_emails.0 = {email!r}: must be an e-mail address" in message
