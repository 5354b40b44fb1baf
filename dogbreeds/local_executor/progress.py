"""Per-step progress lines on the console, and step processes whose output goes to a log file.

A step's full output is kept in its log file; the console gets one line per step so a run of
many steps stays readable, and the end of the log only when a step fails.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

from dogbreeds.local_executor.errors import StepFailedError

LOG_TAIL_LINES = 40
SUPERVISOR = Path(__file__).resolve().with_name("step_supervisor.py")
SUPERVISOR_COULD_NOT_START = 127
# The training job's per-epoch line (metric_line, dogbreeds_jobs/training/loop.py; the estimator's
# metric definitions read it too): `epoch=3 train_loss=... val_accuracy=... images_per_second=...`.
EPOCH_METRIC_LINE = re.compile(r"^epoch=\d+ .*\bval_accuracy=")


class Progress:
    """Writes `[2/5] Train (Training) ...` lines; `stream=None` keeps a run silent."""

    def __init__(self, total: int, stream: TextIO | None = sys.stdout) -> None:
        self.total = total
        self.stream = stream
        self._index = 0
        self._started = 0.0

    def say(self, text: str) -> None:
        if self.stream is not None:
            print(text, file=self.stream, flush=True)

    def step_started(self, name: str, step_type: str) -> None:
        self._index += 1
        self._started = time.monotonic()
        self.say(f"[{self._index}/{self.total}] {name} ({step_type}) ...")

    def step_finished(self, name: str, outcome: str) -> float:
        seconds = time.monotonic() - self._started
        self.say(f"[{self._index}/{self.total}] {name}: {outcome} ({seconds:.1f}s)")
        return seconds

    def step_skipped(self, name: str, step_type: str, reason: str) -> None:
        self._index += 1
        self.say(f"[{self._index}/{self.total}] {name} ({step_type}): skipped, {reason}")


def log_tail(log_path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of a log file (empty if there is none)."""
    if not log_path.is_file():
        return ""
    with log_path.open(errors="replace") as handle:
        return "".join(deque(handle, maxlen=lines))


def step_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment plus `extra`, with our Python first on PATH.

    Step commands say `python3` as they would in a container; putting sys.executable's folder
    first makes that the interpreter (and packages) this executor runs with.
    """
    environment = dict(os.environ)
    environment.update(extra)
    python_bin = str(Path(sys.executable).parent)
    environment["PATH"] = os.pathsep.join([python_bin, environment.get("PATH", "")])
    environment["PYTHONUNBUFFERED"] = "1"  # the log then shows the last line before a crash
    return environment


def run_logged(
    step_name: str,
    command: Sequence[str],
    *,
    environment: Mapping[str, str],
    cwd: Path,
    log_path: Path,
    echo: TextIO | None = None,
    metrics: TextIO | None = None,
) -> None:
    """Run a step's command with stdout and stderr into `log_path`; raise StepFailedError on failure.

    `echo` gets every line (--verbose); otherwise `metrics` gets the per-epoch metric lines only, so
    a long training step shows its progress as it goes.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    last_line = ""
    with log_path.open("a") as log:
        log.write(f"$ {' '.join(command)}\n")
        log.flush()
        try:
            # The supervisor ends the command's whole process tree when the command ends or this
            # process dies (kill -9 included), so no orphan writes into a finished execution.
            process = subprocess.Popen(
                [sys.executable, "-I", str(SUPERVISOR), str(os.getpid()), "--", *command],
                cwd=cwd,
                env=dict(environment),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                start_new_session=True,  # a terminal's Ctrl-C reaches us; we stop the step
            )
        except OSError as error:
            raise StepFailedError(step_name, f"could not start {command[0]!r}: {error}") from None
        with process:  # closes the pipe and reaps the child, also when reading is interrupted
            assert process.stdout is not None
            try:
                for line in process.stdout:
                    log.write(line)
                    last_line = line
                    if echo is not None:
                        echo.write(f"  {step_name} | {line}")
                    elif metrics is not None and EPOCH_METRIC_LINE.match(line):
                        metrics.write(f"  {step_name} | {line.rstrip()}\n")
                        metrics.flush()
            except BaseException:  # Ctrl-C, or a failing write: stop the step's tree, then re-raise
                process.terminate()
                raise
            returncode = process.wait()
    if returncode == SUPERVISOR_COULD_NOT_START and last_line.startswith("could not start "):
        raise StepFailedError(step_name, last_line.strip())
    if returncode != 0:
        raise StepFailedError(
            step_name,
            f"command exited with status {returncode} (full log: {log_path})",
            log_tail(log_path),
        )
