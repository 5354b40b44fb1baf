"""Step processes die with the executor: no orphan keeps writing into a dead execution."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from repo_paths import REPO_ROOT

from dogbreeds.local_executor.errors import StepFailedError
from dogbreeds.local_executor.progress import run_logged, step_environment

# The step: a child that starts a grandchild in a session of its own (as torchrun starts its
# workers), and both append to a file until killed.
STEP = """
import os, subprocess, sys, time
from pathlib import Path
folder = Path(sys.argv[1])
if sys.argv[2] == "child":
    subprocess.Popen([sys.executable, __file__, str(folder), "grandchild"], start_new_session=True)
while True:
    (folder / f"{sys.argv[2]}.pid").write_text(str(os.getpid()))
    with (folder / f"{sys.argv[2]}.out").open("a") as out:
        out.write("x")
    time.sleep(0.05)
"""

# The executor's side: run the step through run_logged, as a Processing or Training step does.
PARENT = """
import sys
from pathlib import Path
from dogbreeds.local_executor.progress import run_logged, step_environment
folder = Path(sys.argv[1])
run_logged("Train", [sys.executable, str(folder / "step.py"), str(folder), "child"],
           environment=step_environment({}), cwd=folder, log_path=folder / "step.log")
"""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")  # a zombie no longer runs


def wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_of_the_executor_takes_the_steps_process_tree_with_it(tmp_path: Path) -> None:
    (tmp_path / "step.py").write_text(STEP)
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(tmp_path)],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    pids = [tmp_path / "child.pid", tmp_path / "grandchild.pid"]
    try:
        assert wait_for(lambda: all(p.is_file() and p.read_text() for p in pids), 30)
        child, grandchild = (int(p.read_text()) for p in pids)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        assert wait_for(lambda: not alive(child) and not alive(grandchild), 10), "orphans still run"
        sizes = [(tmp_path / name).stat().st_size for name in ("child.out", "grandchild.out")]
        time.sleep(0.5)
        assert [(tmp_path / name).stat().st_size for name in ("child.out", "grandchild.out")] == sizes
    finally:
        for path in pids:
            if path.is_file() and path.read_text():
                pid = int(path.read_text())
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)


def test_a_finished_step_leaves_no_background_process_behind(tmp_path: Path) -> None:
    """A grandchild that outlives its step would hold the log pipe open and wedge the run."""
    script = tmp_path / "step.py"
    script.write_text(
        "import subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], start_new_session=True)\n"
        "print('started', flush=True)\n"
    )
    started = time.monotonic()
    run_logged("Pre", [sys.executable, str(script)], environment=step_environment({}), cwd=tmp_path,
               log_path=tmp_path / "step.log")  # fmt: skip
    assert time.monotonic() - started < 30
    assert "started" in (tmp_path / "step.log").read_text()


def test_exit_status_and_a_missing_program_are_reported_as_before(tmp_path: Path) -> None:
    with pytest.raises(StepFailedError, match="exited with status 3"):
        run_logged("Pre", [sys.executable, "-c", "raise SystemExit(3)"], environment=step_environment({}),
                   cwd=tmp_path, log_path=tmp_path / "a.log")  # fmt: skip
    with pytest.raises(StepFailedError, match="could not start 'no-such-program-here'"):
        run_logged("Pre", ["no-such-program-here"], environment=step_environment({}), cwd=tmp_path,
                   log_path=tmp_path / "b.log")  # fmt: skip
