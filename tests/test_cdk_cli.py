"""The real CDK CLI synthesises every environment offline and deterministically, and cfn-lint
finds no error in any template."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from cdk_helpers import build_app
from repo_paths import REPO_ROOT

ENVIRONMENTS = ("dev", "staging", "prod")
pytestmark = pytest.mark.synth


def _offline_env() -> dict[str, str]:
    """The environment of a machine with no AWS account: no credentials, no profile, no IMDS."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    env["AWS_SHARED_CREDENTIALS_FILE"] = "/nonexistent/credentials"
    env["AWS_CONFIG_FILE"] = "/nonexistent/config"
    env["JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"] = "20"
    env["CDK_DISABLE_VERSION_CHECK"] = "1"
    return env


def _network_blocker() -> list[str]:
    """Run the CLI in a network namespace with no interfaces when the OS allows it."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-rn", "true"], capture_output=True).returncode == 0:
        return [unshare, "-rn"]
    return []


def cdk_synth(env_name: str, outdir: Path) -> subprocess.CompletedProcess:
    command = [*_network_blocker(), "npx", "--no-install", "cdk", "synth", "-q",
               "-c", f"env={env_name}", "-o", str(outdir)]
    return subprocess.run(
        command, cwd=REPO_ROOT, env=_offline_env(), capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def synthesised(tmp_path_factory) -> dict[str, Path]:
    outdirs = {}
    for env_name in ENVIRONMENTS:
        outdir = tmp_path_factory.mktemp(f"cdk-out-{env_name}")
        result = cdk_synth(env_name, outdir)
        assert result.returncode == 0, result.stdout + result.stderr
        outdirs[env_name] = outdir
    return outdirs


def _templates(outdir: Path) -> list[Path]:
    return sorted(outdir.glob("*.template.json"))


@pytest.mark.parametrize("env_name", ENVIRONMENTS)
def test_cli_synth_offline_produces_every_stack(synthesised, env_name):
    names = {p.name for p in _templates(synthesised[env_name])}
    assert f"dogbreeds-{env_name}-storage.template.json" in names


def test_synth_is_byte_for_byte_deterministic(synthesised, tmp_path):
    again = tmp_path / "again"
    result = cdk_synth("dev", again)
    assert result.returncode == 0, result.stderr
    first = {p.name: p.read_bytes() for p in _templates(synthesised["dev"])}
    second = {p.name: p.read_bytes() for p in _templates(again)}
    assert first.keys() == second.keys()
    for name in first:
        assert first[name] == second[name], f"{name} differs between two synths"


@pytest.mark.parametrize("env_name", ENVIRONMENTS)
def test_cfn_lint_finds_no_errors(synthesised, env_name):
    templates = [str(p) for p in _templates(synthesised[env_name])]
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), "--format", "parseable", *templates],
        cwd=REPO_ROOT,  # picks up .cfnlintrc.yaml and its reasoned ignores
        capture_output=True,
        text=True,
    )
    # cfn-lint exit codes are bit flags: 2 = error, 4 = warning, 8 = informational.
    assert result.returncode == 0, result.stdout + result.stderr


def test_bad_settings_fail_cli_synth_with_a_clear_message(tmp_path):
    result = cdk_synth("qa", tmp_path / "out")
    assert result.returncode != 0
    assert "Unknown environment 'qa'" in result.stderr + result.stdout


def test_in_process_synth_needs_no_network(monkeypatch, tmp_path):
    """Any attempt to open a network connection while building and synthesising fails the test."""
    attempts: list[object] = []
    real_connect = socket.socket.connect

    def guarded_connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            attempts.append(address)
            raise OSError(f"network access attempted during synth: {address}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    app, _ = build_app("prod", outdir=str(tmp_path))
    assembly = app.synth()
    assert attempts == []
    assert any(s.stack_name == "dogbreeds-prod-storage" for s in assembly.stacks)
