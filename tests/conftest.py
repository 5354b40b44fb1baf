"""Session-wide test environment."""

import os

import pytest
from lambda_code import function_module

# jsii prints a large Node end-of-life banner on every app; it hides real output in test logs.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")


# The Lambda functions' modules, imported from their staged asset folders (what ships), once a session.


@pytest.fixture(scope="session")
def deploy_config():
    return function_module("deploy_endpoint", "deploy_config")


@pytest.fixture(scope="session")
def deploy_events():
    return function_module("deploy_endpoint", "deploy_events")


@pytest.fixture(scope="session")
def deploy_handler():
    return function_module("deploy_endpoint", "deploy_handler")


@pytest.fixture(scope="session")
def deploy_logging():
    return function_module("deploy_endpoint", "deploy_logging")


@pytest.fixture(scope="session")
def deploy_metrics():
    return function_module("deploy_endpoint", "deploy_metrics")


@pytest.fixture(scope="session")
def deploy_names():
    return function_module("deploy_endpoint", "deploy_names")


@pytest.fixture(scope="session")
def endpoint_autoscaling():
    return function_module("deploy_endpoint", "endpoint_autoscaling")


@pytest.fixture(scope="session")
def endpoint_rollout():
    return function_module("deploy_endpoint", "endpoint_rollout")


@pytest.fixture(scope="session")
def retrain_guard():
    return function_module("retrain_guard", "retrain_guard")
