"""A real moto server over HTTP for tests that call AWS APIs with boto3, and the environment that
sends every boto3 client there (``AWS_ENDPOINT_URL``) with dummy credentials, so nothing can reach
real AWS.

Tests take the ``aws`` fixture (tests/conftest.py) as an argument: a freshly reset server and this
process pointed at it. ``aws_environment`` gives a subprocess the same.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's account


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def aws_environment(url: str) -> dict[str, str]:
    """Variables that point boto3 (in this process or a subprocess) at the moto server."""
    return {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials",
        "AWS_CONFIG_FILE": "/nonexistent/config",
        "AWS_EC2_METADATA_DISABLED": "true",
    }


@contextmanager
def running_moto_server() -> Iterator[str]:
    """A moto server on a free loopback port for the ``with`` block: its URL."""
    executable = Path(sys.executable).parent / "moto_server"
    port = _free_port()
    # The server logs a line per request to stderr: a file, not a pipe nobody drains (a full pipe
    # would block the server after a few hundred requests).
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [str(executable), "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=log,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        try:
            while True:
                if process.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"moto_server exited: {log.read().decode()[-2000:]}")
                try:
                    urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"moto_server did not answer on {url} within 30 s") from None
                    time.sleep(0.1)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def reset_moto_server(url: str) -> None:
    """Forget every resource the server holds."""
    request = urllib.request.Request(f"{url}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).close()
