"""Runs one step command and makes sure its whole process tree ends with it or with the executor.

`run_logged` starts this file as `python -I step_supervisor.py EXECUTOR_PID -- COMMAND...` in a
session of its own; it is standard library only and must stay importable without the project.

* It is a child subreaper (Linux), so every process the command starts, however deep and even in
  a session of its own (torchrun starts its workers that way), stays its descendant when the
  processes between die.
* When the executor dies, `kill -9` included, the kernel sends it SIGTERM (PR_SET_PDEATHSIG); it
  also polls its parent, the fallback where prctl is missing. SIGTERM, SIGINT and SIGHUP make it
  SIGKILL every descendant and exit.
* When the command exits, descendants it left running are killed too: they would keep writing into
  a finished step and hold the log pipe open.

Exit status: the command's; 127 with a message when the command cannot be started.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
POLL_SECONDS = 0.2


def _prctl(option: int, value: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _descendants() -> list[int]:
    """Pids of every process below this one (from /proc; empty where there is none)."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    found, queue = [], [os.getpid()]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def kill_tree() -> None:
    """SIGKILL every descendant (until none is left), then reap them."""
    for _ in range(50):
        pids = _descendants()
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        _reap()
        time.sleep(0.02)
    else:
        # Without /proc: the whole group, this process included, as a last resort.
        with contextlib.suppress(OSError):
            os.killpg(os.getpgrp(), signal.SIGKILL)
    _reap()


def _reap() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass


def main(argv: list[str]) -> int:
    executor_pid, command = int(argv[0]), argv[2:]
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)

    def stop(signum: int, _frame: object) -> None:
        kill_tree()
        os._exit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, stop)
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != executor_pid:  # the executor died before the line above took effect
        return 128 + signal.SIGTERM
    try:
        process = subprocess.Popen(command)
    except OSError as error:
        print(f"could not start {command[0]!r}: {error}", flush=True)
        return 127
    while True:
        try:
            returncode = process.wait(timeout=POLL_SECONDS)
            break
        except subprocess.TimeoutExpired:
            if os.getppid() != executor_pid:
                stop(signal.SIGTERM, None)
    kill_tree()
    return returncode if returncode >= 0 else 128 - returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
