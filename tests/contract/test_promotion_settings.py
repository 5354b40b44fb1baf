"""Promotion settings: which environment a model comes from, receive-only environments, and the
promotions that could never happen, refused with the keys that make them impossible."""

from __future__ import annotations

import pytest
from cdk_helpers import project_context

from contract.settings import (
    ALARM_HISTORY_HOURS,
    SettingsError,
    load_environment,
    load_environment_with_peers,
    parse_project_settings,
)


def _error(context: dict, env: str) -> str:
    with pytest.raises(SettingsError) as caught:
        load_environment(context, env)
    return str(caught.value)


def test_shipped_chain_is_dev_to_staging_to_prod():
    context = project_context()
    _, prod, peers = load_environment_with_peers(context, "prod")
    assert prod.promotion is not None and prod.promotion.source == "staging"
    assert not prod.training.enabled and not prod.promotion.approve
    assert peers.source is not None and peers.source[0] == "staging" and peers.targets == ()
    _, staging, peers = load_environment_with_peers(context, "staging")
    assert staging.promotion.source == "dev" and not staging.training.enabled
    assert [name for name, _ in peers.targets] == ["prod"]
    _, dev, peers = load_environment_with_peers(context, "dev")
    assert dev.promotion is None and dev.training.enabled
    assert peers.source is None and [name for name, _ in peers.targets] == ["staging"]


def test_a_source_that_does_not_exist_is_named():
    context = project_context()
    context["environments"]["prod"]["promotion"]["source"] = "qa"
    message = _error(context, "prod")
    assert "environments.prod.promotion.source = 'qa': no such environment; defined: dev, prod, staging" in (
        message
    )


def test_promoting_from_itself_is_refused():
    context = project_context()
    context["environments"]["prod"]["promotion"]["source"] = "prod"
    assert "environments.prod.promotion.source = 'prod': an environment cannot promote from itself" in (
        _error(context, "prod")
    )


def test_a_cycle_of_sources_is_refused_with_the_cycle():
    context = project_context()
    context["environments"]["dev"]["promotion"] = {"source": "prod", "live_accuracy_gate": False}
    message = _error(context, "prod")
    assert "promotion sources form a cycle" in message
    assert "prod -> staging -> dev -> prod" in message
    # The whole-project check finds it too.
    with pytest.raises(SettingsError, match="cycle"):
        parse_project_settings({"environments": context["environments"]})


def test_live_accuracy_gate_needs_monitoring_in_the_source():
    context = project_context()
    context["environments"]["staging"]["monitoring"]["enabled"] = False
    message = _error(context, "prod")
    assert (
        "environments.prod.promotion.live_accuracy_gate = True, "
        "environments.staging.monitoring.enabled = False" in message
    )
    context["environments"]["prod"]["promotion"]["live_accuracy_gate"] = False
    load_environment(context, "prod")


def test_min_hours_live_beyond_the_sources_retention_is_refused():
    context = project_context()
    context["environments"]["staging"]["data_retention_days"] = 1
    context["environments"]["prod"]["promotion"]["min_hours_live"] = 25
    message = _error(context, "prod")
    assert "environments.prod.promotion.min_hours_live = 25, " in message
    assert "environments.staging.data_retention_days = 1: the source keeps" in message
    context["environments"]["prod"]["promotion"]["min_hours_live"] = 24
    load_environment(context, "prod")


def test_min_hours_live_beyond_alarm_history_is_refused():
    context = project_context()
    context["environments"]["prod"]["promotion"]["min_hours_live"] = ALARM_HISTORY_HOURS + 1
    assert f"promotion.min_hours_live = {ALARM_HISTORY_HOURS + 1}: Input should be less than" in (
        _error(context, "prod")
    )


def test_training_disabled_without_a_source_is_refused():
    context = project_context()
    context["environments"]["dev"]["training"]["enabled"] = False
    message = _error(context, "dev")
    assert "environments.dev: training.enabled = False, promotion = None" in message


def test_retrain_on_drift_set_with_training_disabled_names_both_keys():
    context = project_context()
    context["environments"]["prod"]["monitoring"]["retrain_on_drift"] = True
    message = _error(context, "prod")
    assert "training.enabled = False, monitoring.retrain_on_drift = True" in message
    # Left at its default it is ignored: there is nothing to retrain.
    del context["environments"]["prod"]["monitoring"]["retrain_on_drift"]
    load_environment(context, "prod")


def test_regions_must_match():
    context = project_context()
    context["environments"]["prod"].update(account="444455556666", region="eu-west-1")
    context["environments"]["staging"].update(account="111122223333", region="us-east-1")
    assert "environments.prod.region = 'eu-west-1', environments.staging.region = 'us-east-1'" in (
        _error(context, "prod")
    )


def test_a_broken_unrelated_environment_does_not_block_this_one():
    context = project_context()
    context["environments"]["other"] = {"training": {"epochs": "ten"}}
    load_environment(context, "prod")


def test_a_broken_target_blocks_its_source():
    """dev's stacks carry the grants for staging, so staging's block must be valid to synth dev."""
    context = project_context()
    context["environments"]["staging"]["promotion"]["min_hours_live"] = -1
    assert "environments.staging.promotion.min_hours_live = -1" in _error(context, "dev")


def test_promotion_keys_are_strict():
    context = project_context()
    context["environments"]["prod"]["promotion"]["aprove"] = True
    assert "environments.prod.promotion.aprove: unknown key" in _error(context, "prod")
    context = project_context()
    context["environments"]["prod"]["promotion"]["approve"] = "yes"
    assert "environments.prod.promotion.approve = 'yes': Input should be a valid boolean" in (
        _error(context, "prod")
    )
