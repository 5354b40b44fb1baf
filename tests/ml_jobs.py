"""Shared helpers for the ML container tests: a tiny generated dataset and the job entry points
run as subprocesses with the container's environment (SM_* variables, explicit paths).


"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from repo_paths import REPO_ROOT

from dogbreeds.sample_data import generate

CONTAINER_DIR = REPO_ROOT / "pipeline_code" / "container"
METRIC_LINE = (
    r"^epoch=(\d+) train_loss=(\d+\.\d{6}) train_accuracy=(\d\.\d{6}) "
    r"val_loss=(\d+\.\d{6}) val_accuracy=(\d\.\d{6}) images_per_second=(\d+\.\d)$"
)
# Tiny but learnable: small pictures, few classes; a fast CPU network at 32 px.
TRAIN_ARGS = ["--backbone", "resnet18", "--image-size", "32", "--batch-size", "16", "--lr", "0.003"]


def job_env(**extra: str) -> dict[str, str]:
    """The environment a job subprocess gets: this worktree importable, one CPU thread."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SM_")}
    env.update(
        PYTHONPATH=str(REPO_ROOT),
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        PYTHONWARNINGS="default",
    )
    env.update(extra)
    return env


def run_job(
    args: list[str], env: dict[str, str], timeout: float = 180
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def make_dataset(
    root: Path, *, breeds: int = 4, per_breed: int = 14, broken: int = 0, seed: int = 0
) -> Path:
    out = root / "images"
    generate(
        out,
        breeds=breeds,
        per_breed=per_breed,
        size=(48, 48),
        seed=seed,
        naming="stanford",
        broken=broken,
        progress=False,
    )
    return out


def preprocess_paths(root: Path) -> dict[str, Path]:
    return {name: root / name for name in ("cache", "test", "baseline", "report")}


def run_preprocess(
    input_dir: Path, root: Path, *extra: str, resource_config: Path | None = None
) -> tuple[subprocess.CompletedProcess, dict[str, Path]]:
    paths = preprocess_paths(root)
    args = [
        str(CONTAINER_DIR / "preprocess.py"),
        "--input-dir", str(input_dir),
        "--cache-dir", str(paths["cache"]),
        "--test-dir", str(paths["test"]),
        "--baseline-dir", str(paths["baseline"]),
        "--report-dir", str(paths["report"]),
        "--resource-config", str(resource_config or root / "no-resourceconfig.json"),
        "--cache-size", "40",
        "--workers", "1",
        *extra,
    ]  # fmt: skip
    return run_job(args, job_env()), paths


def train_env(cache_dir: Path, root: Path, **extra: str) -> dict[str, str]:
    return job_env(
        SM_CHANNEL_TRAIN=str(cache_dir),
        SM_MODEL_DIR=str(root / "model"),
        SM_OUTPUT_DATA_DIR=str(root / "output"),
        **extra,
    )


def run_train(
    cache_dir: Path, root: Path, *extra: str, nproc: int = 1, env_extra: dict | None = None
) -> subprocess.CompletedProcess:
    """train.py as SageMaker starts it: plain, or under torchrun for data parallel."""
    launcher = (
        ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
        if nproc > 1
        else []
    )
    args = [
        *launcher,
        str(CONTAINER_DIR / "train.py"),
        *TRAIN_ARGS,
        "--checkpoint-dir", str(root / "checkpoints"),
        *extra,
    ]  # fmt: skip
    return run_job(args, train_env(cache_dir, root, **(env_extra or {})))


def read_json(path: Path) -> object:
    return json.loads(path.read_text())
