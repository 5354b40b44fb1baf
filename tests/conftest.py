"""Session-wide test environment and the fixtures tests in more than one folder take.

pytest puts this folder on sys.path (conftest.py here, no __init__.py), so the helper modules beside
this file import by their bare names from tests at any depth.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from aws_test_env import aws_environment, reset_moto_server, running_moto_server
from lambda_code import function_module

if TYPE_CHECKING:
    from monitoring_cases import MonitorCase

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


# A real moto server over HTTP, one a session; ``aws`` resets it for each test.


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    with running_moto_server() as url:
        yield url


@pytest.fixture
def aws(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A reset moto server and this process's boto3 pointed at it."""
    reset_moto_server(moto_server)
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    for key, value in aws_environment(moto_server).items():
        monkeypatch.setenv(key, value)
    return moto_server


# The monitoring case: the job tests of the monitors and the local-mode tests that run them.


@pytest.fixture(scope="session")
def monitor_case(tmp_path_factory: pytest.TempPathFactory) -> MonitorCase:
    """One trained model with baselines, shared by every monitoring test (about 20 s to build)."""
    import torch  # imported here: a run without the monitoring tests need not load torch
    from monitoring_cases import build_case

    torch.set_num_threads(1)
    return build_case(tmp_path_factory.mktemp("monitor-case"))
