"""The deploy Lambda refuses a wrong environment with a message naming each bad variable."""

from __future__ import annotations

import pytest
from deploy_helpers import environment


def test_the_stack_environment_parses_into_typed_settings(deploy_config):
    names, env = environment("prod")
    config = deploy_config.DeployConfig.from_environ(env)
    assert config.endpoint_name == names.endpoint
    assert config.max_instances == 6 and config.canary_wait_seconds == 900
    assert config.network_isolation is True
    assert config.rollback_alarms == names.rollback_alarms


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"DEPLOY_ENDPOINT_NAME": None}, "DEPLOY_ENDPOINT_NAME is not set"),
        ({"DEPLOY_MAX_INSTANCES": "six"}, "DEPLOY_MAX_INSTANCES='six': must be a whole number"),
        ({"DEPLOY_NETWORK_ISOLATION": "yes"}, "DEPLOY_NETWORK_ISOLATION='yes': must be 'true' or 'false'"),
        ({"DEPLOY_ENDPOINT_KIND": "batch"}, "DEPLOY_ENDPOINT_KIND='batch': allowed are realtime, serverless"),
        ({"DEPLOY_ROLLBACK_ALARMS": ","}, "must be a comma-separated list"),
    ],
)
def test_bad_environment_names_the_variable_and_what_is_allowed(change, message, deploy_config):
    _, env = environment("dev")
    for key, value in change.items():
        if value is None:
            env.pop(key)
        else:
            env[key] = value
    with pytest.raises(deploy_config.ConfigError, match="deploy Lambda environment is incomplete") as caught:
        deploy_config.DeployConfig.from_environ(env)
    assert message in str(caught.value)
