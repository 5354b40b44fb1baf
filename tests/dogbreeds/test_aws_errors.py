"""Ordinary AWS mistakes end every AWS-facing `dogbreeds` command with one line and a non-zero exit:
the real CLI as a subprocess, against moto, a closed port, or a tiny server that denies or throttles."""

from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from aws_test_env import aws_environment
from repo_paths import REPO_ROOT

from dogbreeds import sample_data


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS="1", AWS_EC2_METADATA_DISABLED="true",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent/credentials", AWS_CONFIG_FILE="/nonexistent/config",
    )
    env.update(extra)
    return env


def dogbreeds(*args: str, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dogbreeds", *args],
        cwd=REPO_ROOT, env=_env(extra), capture_output=True, text=True, timeout=120,
    )


def assert_one_line(result: subprocess.CompletedProcess, *expected: str) -> None:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    for text in expected:
        assert text in result.stderr, result.stderr


class _Denying(http.server.BaseHTTPRequestHandler):
    """Answers every AWS call with an error in the protocol it was asked in; counts the requests."""

    protocol_version = "HTTP/1.1"  # so S3's "Expect: 100-continue" uploads are understood
    code = "AccessDenied"
    requests: list[str] = []

    def do_POST(self):  # noqa: N802
        self._answer()

    do_GET = do_PUT = do_HEAD = do_POST  # noqa: N815

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        type(self).requests.append(self.path)
        json_protocol = "json" in (self.headers.get("Content-Type") or "")
        message = f"User: arn:aws:iam::123456789012:user/dev is not authorized ({self.code})"
        if json_protocol:
            body = json.dumps({"__type": self.code, "message": message}).encode()
            self.send_response(400)
            self.send_header("x-amzn-ErrorType", self.code)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
        else:
            body = (f"<ErrorResponse><Error><Code>{self.code}</Code><Message>{message}</Message>"
                    "</Error></ErrorResponse>").encode()
            self.send_response(403 if self.code == "AccessDenied" else 400)
            self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")  # an unread (chunked) upload body is not a request
        self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def denying_server():
    servers = []

    def start(code: str) -> tuple[str, list[str]]:
        handler = type("Handler", (_Denying,), {"code": code, "requests": []})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}", handler.requests

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("errors") / "data"
    sample_data.generate(root, breeds=2, per_breed=2, size=(32, 32), seed=1, odd=False, progress=False)
    return root


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("records") / "r.jsonl"
    entry = {"inference_id": "id-1", "image": "a.jpg", "true_label": "pug", "drift": None, "status": 200,
             "predicted_breed": "pug"}
    path.write_text(json.dumps(entry) + "\n")
    return path


def commands(dataset: Path, records: Path, bucket: str = "no-such-bucket") -> dict[str, list[str]]:
    return {
        "models": ["models", "list", "--env", "dev"],
        "dataset": ["dataset", "upload", str(dataset), "--env", "dev", "--bucket", bucket],
        "ground-truth": ["ground-truth", "--records", str(records), "--out", f"s3://{bucket}/gt"],
        "pipeline": ["pipeline", "list", "--env", "dev"],
        "traffic": [
            "traffic", "--endpoint", "dogbreeds-dev-endpoint", "--images", str(dataset), "--count", "1"
        ],
    }


KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
REGION = {"AWS_DEFAULT_REGION": "eu-west-1"}
NAMES = ["models", "dataset", "ground-truth", "pipeline", "traffic"]


@pytest.mark.parametrize("name", NAMES)
def test_no_region(name, dataset, records):
    if name in ("dataset", "ground-truth"):
        pytest.skip("S3 with an explicit bucket needs no region")
    assert_one_line(dogbreeds(*commands(dataset, records)[name], **KEYS), "no AWS region", "cdk.json")


@pytest.mark.parametrize("name", NAMES)
def test_no_credentials(name, dataset, records):
    result = dogbreeds(*commands(dataset, records)[name], **REGION)
    assert_one_line(result, "no AWS credentials", "AWS_PROFILE")


@pytest.mark.parametrize("name", NAMES)
def test_a_profile_that_does_not_exist(name, dataset, records):
    result = dogbreeds(*commands(dataset, records)[name], AWS_PROFILE="nope", **REGION)
    assert_one_line(result, "the AWS profile 'nope' does not exist", "aws configure --profile nope")


@pytest.mark.parametrize("name", NAMES)
def test_aws_unreachable(name, dataset, records):
    url = f"http://127.0.0.1:{_closed_port()}"
    result = dogbreeds(*commands(dataset, records)[name], AWS_ENDPOINT_URL=url, **KEYS, **REGION)
    assert_one_line(result, f"cannot reach AWS at {url}", "after retries")


@pytest.mark.parametrize("name", ["dataset", "ground-truth"])
def test_missing_bucket(name, dataset, records, aws):  # noqa: F811
    result = dogbreeds(*commands(dataset, records)[name], **aws_environment(aws))
    assert_one_line(result, "the S3 bucket 'no-such-bucket' does not exist")


@pytest.mark.parametrize("name", ["models", "dataset"])
def test_access_denied_names_the_action_and_resource(name, dataset, records, denying_server):
    url, _ = denying_server("AccessDeniedException" if name == "models" else "AccessDenied")
    result = dogbreeds(*commands(dataset, records)[name], AWS_ENDPOINT_URL=url, **KEYS, **REGION)
    action = {
        "models": "sagemaker:ListModelPackages on dogbreeds-dev-models",
        "dataset": "s3:ListObjectsV2 on s3://no-such-bucket/",
    }[name]
    assert_one_line(result, f"access denied calling {action}", "is not authorized")


def test_throttling_is_retried_then_reported_in_one_line(dataset, records, denying_server):
    url, requests = denying_server("ThrottlingException")
    result = dogbreeds(*commands(dataset, records)["models"], AWS_ENDPOINT_URL=url, **KEYS, **REGION)
    assert_one_line(result, "AWS throttled sagemaker:ListModelPackages", "on all 4 attempts")
    assert len(requests) == 4


def test_a_call_throttled_once_then_answered_succeeds(aws, capsys):  # noqa: F811
    """In-process: the first ListModelPackages gets a ThrottlingException; the retry reaches moto."""
    import boto3
    from botocore.awsrequest import AWSResponse

    from dogbreeds.cli import main

    calls = []

    def throttle_once(request, **kwargs):
        calls.append(request.url)
        if len(calls) == 1:
            body = b'{"__type": "ThrottlingException", "message": "Rate exceeded"}'
            raw = type("Raw", (), {"stream": lambda self, **kw: iter([body])})()
            return AWSResponse(request.url, 400, {"x-amzn-ErrorType": "ThrottlingException"}, raw)
        return None

    boto3.setup_default_session()
    boto3.DEFAULT_SESSION.events.register("before-send.sagemaker.ListModelPackages", throttle_once)
    try:
        assert main(["models", "list", "--env", "dev"]) == 0
    finally:
        boto3.DEFAULT_SESSION = None
    assert len(calls) == 2
    assert "No versions registered" in capsys.readouterr().out


def test_ctrl_c_ends_a_command_with_one_line_and_130(tmp_path):
    """SIGINT while `models list` waits on an endpoint that accepts but never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.settimeout(60)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        process = subprocess.Popen(
            [sys.executable, "-m", "dogbreeds", "models", "list", "--env", "dev"],
            cwd=REPO_ROOT, env=_env({"AWS_ENDPOINT_URL": url, **KEYS, **REGION}),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        connection, _ = listener.accept()  # the command is now inside its AWS call
        time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
        connection.close()
    assert process.returncode == 130
    assert "Traceback" not in stderr and stderr.strip().splitlines() == [
        "dogbreeds models: interrupted (Ctrl-C)"
    ]


def test_traffic_to_an_endpoint_name_without_credentials_ends_with_one_line(dataset):
    """Per-request catching must not swallow a setup mistake as a failed request."""
    result = dogbreeds(
        "traffic", "--endpoint", "dogbreeds-dev-endpoint", "--images", str(dataset), "--count", "3", **REGION
    )
    assert_one_line(result, "dogbreeds traffic: error: no AWS credentials")
    assert result.stdout == ""

