"""The local model registry and `dogbreeds local models list|show|approve|reject`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from repo_paths import REPO_ROOT

from dogbreeds.cli import main
from dogbreeds.local_registry import LocalModelRegistry, RegistryError

METRICS = {"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": "s3://b/eval.json"}}}
BASELINES = {
    "ModelDataQuality": {
        "Statistics": {"ContentType": "application/json", "S3Uri": "s3://b/statistics.json"},
        "Constraints": {"ContentType": "application/json", "S3Uri": "s3://b/constraints.json"},
    }
}


def add_versions(registry: LocalModelRegistry, count: int, group: str = "dogs") -> list[dict]:
    return [
        registry.register(
            group=group,
            model_data_url=f"s3://b/models/job-{i}/output/model.tar.gz",
            model_metrics=METRICS,
            drift_check_baselines=BASELINES,
        )
        for i in range(1, count + 1)
    ]


def test_versions_count_up_per_group_and_survive_reopening(tmp_path: Path) -> None:
    registry = LocalModelRegistry(tmp_path)
    first, second = add_versions(registry, 2)
    other = add_versions(registry, 1, group="cats")[0]

    assert (first["version"], second["version"], other["version"]) == (1, 2, 1)
    reopened = LocalModelRegistry(tmp_path)
    package = reopened.get(2, "dogs")
    assert package["approval_status"] == "PendingManualApproval"
    assert package["model_data_url"] == "s3://b/models/job-2/output/model.tar.gz"
    assert package["metrics_uris"] == {"ModelQuality.Statistics": "s3://b/eval.json"}
    assert package["baseline_uris"] == {
        "ModelDataQuality.Statistics": "s3://b/statistics.json",
        "ModelDataQuality.Constraints": "s3://b/constraints.json",
    }
    assert package["arn"].endswith(":model-package/dogs/2")
    assert package["created_at"] == package["updated_at"]
    assert json.loads((tmp_path / "model_registry.json").read_text())["packages"][2]["group"] == "cats"


def test_approve_and_reject_change_status_and_keep_history(tmp_path: Path) -> None:
    registry = LocalModelRegistry(tmp_path)
    add_versions(registry, 3)

    assert registry.set_status(None, "Approved")["version"] == 3  # the newest by default
    registry.set_status(1, "Rejected", reason="worse than 3")
    assert [p["approval_status"] for p in registry.packages()] == [
        "Rejected",
        "PendingManualApproval",
        "Approved",
    ]
    assert registry.latest(status="Approved")["version"] == 3
    assert registry.get(1)["status_history"][-1] == {
        "status": "Rejected",
        "at": registry.get(1)["updated_at"],
        "reason": "worse than 3",
    }


def test_bad_requests_say_what_is_allowed(tmp_path: Path) -> None:
    registry = LocalModelRegistry(tmp_path)
    with pytest.raises(RegistryError, match="has no model packages yet"):
        registry.set_status(None, "Approved")
    add_versions(registry, 2)
    with pytest.raises(RegistryError, match="has no version 7; versions: 1, 2"):
        registry.set_status(7, "Approved")
    with pytest.raises(
        RegistryError, match="'Deployed' is not valid; use one of PendingManualApproval, Approved"
    ):
        registry.set_status(1, "Deployed")
    add_versions(registry, 1, group="cats")
    with pytest.raises(RegistryError, match="several groups; name one with --group: cats, dogs"):
        registry.latest()
    (tmp_path / "model_registry.json").write_text("{not json")
    with pytest.raises(RegistryError, match="is not valid JSON"):
        registry.packages()


def test_models_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    add_versions(LocalModelRegistry(tmp_path), 2)
    workdir = ["--workdir", str(tmp_path)]

    assert main(["local", "models", "approve", "1", *workdir]) == 0
    assert "dogs version 1: Approved" in capsys.readouterr().out
    assert main(["local", "models", "reject", *workdir]) == 0
    assert "dogs version 2: Rejected" in capsys.readouterr().out
    assert main(["local", "models", "list", *workdir]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0] == "group dogs"
    assert listing[2].split()[:2] == ["1", "Approved"]
    assert listing[3].split()[:2] == ["2", "Rejected"]
    assert main(["local", "models", "approve", "9", *workdir]) == 1
    assert "has no version 9" in capsys.readouterr().out


def test_models_command_runs_as_the_console_script_would(tmp_path: Path) -> None:
    add_versions(LocalModelRegistry(tmp_path), 1)
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "dogbreeds", "local", "models"]
    approved = subprocess.run(
        [*command, "approve", "--workdir", str(tmp_path)], env=environment, capture_output=True, text=True
    )
    assert approved.returncode == 0, approved.stderr
    assert LocalModelRegistry(tmp_path).get(1)["approval_status"] == "Approved"
    empty = subprocess.run(
        [*command, "list", "--workdir", str(tmp_path / "empty")],
        env=environment,
        capture_output=True,
        text=True,
    )
    assert empty.returncode == 0 and "no model packages in" in empty.stdout


def _registry_files(workdir: Path) -> list[str]:
    return sorted(p.name for p in workdir.glob(".registry-*.json"))


def test_a_writer_killed_mid_write_leaves_no_temp_file_after_the_next_write(tmp_path: Path) -> None:
    add_versions(LocalModelRegistry(tmp_path), 1)
    # A real `kill -9` of `local models approve` after it wrote its temp file, before the rename.
    script = (
        "import os, sys, time\n"
        "from dogbreeds import local_registry\n"
        "def stuck(*_args):\n"
        "    print('ready', flush=True)\n"
        "    time.sleep(60)\n"
        "local_registry.os.replace = stuck\n"
        "from dogbreeds.cli import main\n"
        f"main(['local', 'models', 'approve', '1', '--workdir', {str(tmp_path)!r}])\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    child.kill()
    child.wait()
    child.stdout.close()
    leftovers = _registry_files(tmp_path)
    assert len(leftovers) == 1  # what the killed writer left behind
    os.utime(tmp_path / leftovers[0], (0, 0))

    registry = LocalModelRegistry(tmp_path)
    assert registry.get(1)["approval_status"] == "PendingManualApproval"  # the kill lost the change
    registry.set_status(1, "Approved")
    assert _registry_files(tmp_path) == []
    assert registry.get(1)["approval_status"] == "Approved"


def test_a_concurrent_writers_fresh_temp_file_is_left_alone(tmp_path: Path) -> None:
    registry = LocalModelRegistry(tmp_path)
    add_versions(registry, 1)
    fresh = tmp_path / ".registry-inflight.json"
    fresh.write_text("{}")
    os.utime(fresh, (fresh.stat().st_atime, fresh.stat().st_mtime + 3600))  # newer than any lock
    registry.set_status(1, "Approved")
    assert fresh.exists()


def test_writes_keep_the_registry_files_mode(tmp_path: Path) -> None:
    registry = LocalModelRegistry(tmp_path)
    old_umask = os.umask(0o022)
    try:
        add_versions(registry, 1)
        assert registry.path.stat().st_mode & 0o777 == 0o644  # a new file honours the umask
        registry.path.chmod(0o664)
        registry.set_status(1, "Approved")
        assert registry.path.stat().st_mode & 0o777 == 0o664
    finally:
        os.umask(old_umask)
