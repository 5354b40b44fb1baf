"""The documentation cannot drift from the code it describes."""

from __future__ import annotations

from repo_paths import REPO_ROOT

from stacks.settings_reference import GROUPS, render


def test_readme_settings_reference_matches_the_settings_model():
    readme = (REPO_ROOT / "README.md").read_text()
    assert render() in readme, (
        "README.md's settings reference is stale: run "
        "`.venv/bin/python -m stacks.settings_reference --write README.md`"
    )


def test_every_setting_is_described():
    undocumented = [
        f"{model.__name__}.{name}"
        for _, model in GROUPS
        for name, field in model.model_fields.items()
        if not field.description and name not in ("training", "endpoint", "monitoring")
    ]
    assert undocumented == []


def test_readme_cost_table_matches_the_settings():
    from cdk_helpers import project_context

    from stacks.cost_estimate import render as render_costs

    readme = (REPO_ROOT / "README.md").read_text()
    assert render_costs(project_context()) in readme, (
        "README.md's cost table is stale: run `.venv/bin/python -m stacks.cost_estimate --write README.md`"
    )


def test_cost_estimate_follows_the_settings():
    import pytest

    from contract.settings import EnvironmentSettings
    from stacks.cost_estimate import HOSTING, HOURS_PER_MONTH, estimate

    base = EnvironmentSettings()
    two = EnvironmentSettings.model_validate(
        {"endpoint": {"min_instances": 2, "initial_instance_count": 2}}
    )
    assert estimate(two).endpoint_hour == pytest.approx(2 * estimate(base).endpoint_hour)
    assert estimate(base).endpoint_hour == HOSTING["ml.m5.large"]
    serverless = EnvironmentSettings.model_validate(
        {"endpoint": {"kind": "serverless"}, "monitoring": {"enabled": False}}
    )
    assert estimate(serverless).endpoint_hour == 0 and estimate(serverless).monitoring_month == 0
    spot = EnvironmentSettings.model_validate({"training": {"use_spot": True}})
    assert estimate(spot).training_run < estimate(base).training_run
    daily = EnvironmentSettings.model_validate({"monitoring": {"schedule": "rate(1 day)"}})
    assert estimate(daily).monitoring_month == pytest.approx(estimate(base).monitoring_month / 24)
    assert estimate(base).always_on_month > estimate(base).endpoint_hour * HOURS_PER_MONTH
    unpriced = EnvironmentSettings.model_validate({"endpoint": {"instance_type": "ml.r7i.large"}})
    with pytest.raises(KeyError, match="no hosting price for ml.r7i.large"):
        estimate(unpriced)
