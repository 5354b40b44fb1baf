"""Every bench script answers `--help` with its usage and runs nothing."""

from __future__ import annotations

import subprocess
import sys

import pytest
from repo_paths import REPO_ROOT

BENCH = REPO_ROOT / "bench"
SCRIPTS = sorted(p.name for p in BENCH.glob("bench_*.py"))


@pytest.mark.parametrize("script", SCRIPTS)
def test_bench_script_answers_help(script, tmp_path):
    completed = subprocess.run(
        [sys.executable, str(BENCH / script), "--help"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.startswith("usage:"), completed.stdout[:500]
    assert not list(tmp_path.iterdir()), "--help wrote files"
