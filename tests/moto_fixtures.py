"""A real moto server over HTTP for tests that call AWS APIs with boto3 (import explicitly).

Usage: ``from moto_fixtures import aws, moto_server  # noqa: F401`` and take ``aws`` as an argument; it
yields the endpoint URL with a freshly reset server and an environment that sends every boto3 client
there (``AWS_ENDPOINT_URL``) with dummy credentials, so nothing can reach real AWS.
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
from pathlib import Path

import pytest

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


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
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


@pytest.fixture
def aws(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A reset moto server and this process's boto3 pointed at it."""
    request = urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).close()
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    for key, value in aws_environment(moto_server).items():
        monkeypatch.setenv(key, value)
    return moto_server
