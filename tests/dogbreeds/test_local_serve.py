"""`dogbreeds local serve` as a real subprocess on a free loopback port, spoken to over HTTP.

The server runs the model through SageMaker's inference toolkit (TorchServe's Python worker with
the PyTorch container's handler service), so every status asserted here is what the toolkit
answers on an endpoint.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import signal
import socket
import struct
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

import pytest
import serving_models
from PIL import Image
from repo_paths import REPO_ROOT

from pipeline_code.container.dogbreeds_jobs.monitoring import capture_format
from pipeline_code.container.dogbreeds_jobs.serving import serving_handlers

ENDPOINT = "dogs-local-test"
GROUP = "dogbreeds-test-models"
# What the training pipeline registers once it names its entry point.
REGISTERED_ENVIRONMENT = {
    "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
    "SAGEMAKER_PROGRAM": "inference.py",
    "SAGEMAKER_REGION": "us-east-1",
    "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
}
# What the SDK registers for a PyTorchModel without an entry point.
EMPTY_PROGRAM_ENVIRONMENT = {
    **REGISTERED_ENVIRONMENT, "SAGEMAKER_PROGRAM": "", "SAGEMAKER_SUBMIT_DIRECTORY": ""
}  # fmt: skip


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(data dir, model dir, model.tar.gz) for a tiny really-trained model."""
    root = tmp_path_factory.mktemp("serve")
    data = serving_models.write_dataset(root / "data", breeds=3, per_breed=8)
    model_dir = serving_models.train_tiny_model(data, root / "model")
    archive = serving_models.pack_model(model_dir, root / "artifact" / "model.tar.gz")
    return data, model_dir, archive


@pytest.fixture(scope="module")
def workdir(artifact, tmp_path_factory) -> Path:
    """A local registry: version 1 as the pipeline should register it, version 2 with an empty
    SAGEMAKER_PROGRAM, both the same model.tar.gz in local S3."""
    root = tmp_path_factory.mktemp("registry")
    serving_models.register_version(root, artifact[2], REGISTERED_ENVIRONMENT, group=GROUP)
    serving_models.register_version(root, artifact[2], EMPTY_PROGRAM_ENVIRONMENT, group=GROUP)
    return root


@pytest.fixture(scope="module")
def server(workdir, tmp_path_factory):
    """Version 1 served from its model.tar.gz, as SageMaker gets it, capturing every request."""
    capture_dir = tmp_path_factory.mktemp("capture")
    running = serving_models.start_server(
        None, "--version", "1", "--workdir", str(workdir),
        "--capture-dir", str(capture_dir), "--capture-percent", "100", "--endpoint-name", ENDPOINT,
    )  # fmt: skip
    running.capture_dir = capture_dir  # type: ignore[attr-defined]
    running.statuses = []  # type: ignore[attr-defined]
    yield running
    code, output = running.stop(signal.SIGTERM)
    assert code == 0, output
    assert "stopped" in output


@pytest.fixture(scope="module")
def direct(artifact) -> serving_handlers.HandlerService:
    """The artifact's own handler functions called directly (the evaluation step's path)."""
    return serving_handlers.HandlerService(artifact[1])


def request(
    url: str,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, http.client.HTTPMessage, bytes, str]:
    """(status, headers (case-insensitive), body, reason phrase)."""
    parsed = urlparse(url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read(), response.reason
    finally:
        connection.close()


def invoke(server, body: bytes, content_type: str | None, **headers: str):
    all_headers = dict(headers)
    if content_type is not None:
        all_headers["Content-Type"] = content_type
    status, response_headers, payload, reason = request(
        server.url, "POST", "/invocations", body, all_headers
    )
    if hasattr(server, "statuses"):
        server.statuses.append(status)
    return status, response_headers, payload, reason


def test_ping_and_startup_line_name_the_version_and_its_environment(server, workdir) -> None:
    startup = server.startup
    assert startup["model_version"] == "tiny-test-1"
    assert startup["url"].startswith("http://127.0.0.1:")
    assert startup["model_package"]["group"] == GROUP and startup["model_package"]["version"] == 1
    assert startup["environment"] == REGISTERED_ENVIRONMENT
    assert startup["model_data"].startswith("s3://dogbreeds-local/models/")
    # The toolkit imported the artifact's own code/inference.py, not this repository's copy.
    handler_code = Path(startup["handler_code"])
    assert handler_code.parts[-2:] == ("code", "inference.py")
    assert REPO_ROOT not in handler_code.parents
    assert request(server.url, "GET", "/ping")[0] == 200
    assert request(server.url, "GET", "/nothing")[0] == 404


def test_invocation_with_sagemaker_headers_predicts_what_the_handlers_do(
    server, artifact, direct
) -> None:
    for path, _ in serving_models.image_files(artifact[0])[:4]:
        status, headers, body, _ = invoke(
            server, path.read_bytes(), "image/jpeg", Accept="application/json",
            **{"X-Amzn-SageMaker-Inference-Id": "order-1",
               "X-Amzn-SageMaker-Custom-Attributes": "trace=abc"},
        )  # fmt: skip
        assert status == 200, body
        assert headers["Content-Type"] == "application/json"
        assert headers["X-Amzn-Invoked-Production-Variant"] == "AllTraffic"
        served = json.loads(body)
        expected = json.loads(direct.invoke(path.read_bytes(), "image/jpeg", None).body)
        assert served["model_version"] == expected["model_version"] == "tiny-test-1"
        (got,), (want,) = served["predictions"], expected["predictions"]
        assert [k["breed"] for k in got["top_k"]] == [k["breed"] for k in want["top_k"]]
        for a, b in zip(got["top_k"], want["top_k"], strict=True):
            assert a["confidence"] == pytest.approx(b["confidence"], abs=1e-4)


def test_the_model_learned_its_training_images(server, artifact) -> None:
    files = serving_models.image_files(artifact[0])
    right = 0
    for path, label in files:
        content_type = "image/png" if path.suffix == ".png" else "image/jpeg"
        status, _, body, _ = invoke(server, path.read_bytes(), content_type)
        assert status == 200, body
        right += json.loads(body)["predictions"][0]["breed"] == label
    assert right / len(files) >= 0.6  # three classes: chance is a third


def odd_and_bad_corpus(data_dir: Path) -> list[tuple[str, bytes, str | None, str | None, int]]:
    """(name, body, content type, accept, the status the toolkit answers with)."""
    jpeg = serving_models.image_files(data_dir)[0][0].read_bytes()
    picture = Image.open(io.BytesIO(jpeg)).convert("RGB").resize((300, 200))
    big = io.BytesIO()
    picture.save(big, "JPEG")
    gif = io.BytesIO()
    picture.save(gif, "GIF")
    bomb = serving_models.png_bomb_header(30_000, 30_000)
    pngs = [p.read_bytes() for p, _ in serving_models.image_files(data_dir) if p.suffix == ".png"]
    return [
        ("gif", gif.getvalue(), "image/png", None, 200),
        *[(f"odd png {i}", body, "image/png", None, 200) for i, body in enumerate(pngs)],
        ("accept anything", jpeg, "image/jpeg", "*/*", 200),
        ("accept json among others", jpeg, "image/jpeg", "text/html, application/json", 200),
        ("empty", b"", "image/jpeg", None, 400),
        ("text as jpeg", b"not a picture at all", "image/jpeg", None, 400),
        ("truncated jpeg", big.getvalue()[: len(big.getvalue()) // 2], "image/jpeg", None, 400),
        ("zeros", bytes(5000), "application/x-image", None, 400),
        ("csv", b"1,2,3", "text/csv", None, 415),
        ("missing content type", jpeg, None, None, 415),
        ("xml accept", jpeg, "image/jpeg", "application/xml", 406),
        ("bad json", b'{"image": ', "application/json", None, 400),
        ("json bomb", json.dumps({"image": base64.b64encode(bomb).decode()}).encode(),
         "application/json", None, 413),
        # The toolkit decodes exactly application/json and text/csv bodies as UTF-8 before
        # input_fn, and a failure there is an ordinary exception: 500.
        ("bad utf-8 json", b'{"image": "\xff\xfe"}', "application/json", None, 500),
        ("image bytes as csv", jpeg, "text/csv", None, 500),
        # With a parameter the type is not exactly application/json: bytes reach input_fn.
        ("bad utf-8 json with charset", b'{"image": "\xff\xfe"}',
         "application/json; charset=utf-8", None, 400),
    ]  # fmt: skip


def test_corpus_gets_the_toolkits_answers_and_server_keeps_answering(server, artifact) -> None:
    good = serving_models.image_files(artifact[0])[1][0].read_bytes()
    for name, body, content_type, accept, expected in odd_and_bad_corpus(artifact[0]):
        headers = {"Accept": accept} if accept else {}
        status, response_headers, payload, reason = invoke(server, body, content_type, **headers)
        assert status == expected, (name, payload)
        if status >= 400:
            # The toolkit's error answer: the handler's phrase as the reason, the message then
            # the traceback as the body, and no content type.
            message, _, trace = payload.decode().partition("\n")
            assert message and trace.startswith("Traceback"), name
            assert "Content-Type" not in response_headers, name
            if status < 500:
                assert reason == http.client.responses[status], name
            else:
                assert reason == message, name  # an unexpected exception's text is the phrase
        # The worker survived: it still answers a health check and a real prediction.
        assert request(server.url, "GET", "/ping")[0] == 200, name
        assert invoke(server, good, "image/jpeg")[0] == 200, name


def test_body_over_the_payload_limit_is_413_and_server_survives(server, artifact) -> None:
    status, _, payload, _ = invoke(server, b"\xff" * (7 * 1024 * 1024), "image/jpeg")
    assert status == 413 and b"limit" in payload
    good = serving_models.image_files(artifact[0])[0][0].read_bytes()
    assert invoke(server, good, "image/jpeg")[0] == 200


def test_concurrent_requests_give_the_same_answers_as_sequential_ones(server, artifact) -> None:
    files = [p.read_bytes() for p, _ in serving_models.image_files(artifact[0])[:6]]
    expected = [json.loads(invoke(server, body, "image/jpeg")[2]) for body in files]

    def call(index: int) -> tuple[int, dict]:
        status, _, body, _ = invoke(
            server,
            files[index % len(files)],
            "image/jpeg",
            **{"X-Amzn-SageMaker-Inference-Id": f"parallel-{index}"},
        )
        return index, json.loads(body) if status == 200 else {"status": status}  # fmt: skip

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(call, range(24)))
    for index, answer in answers:
        assert answer == expected[index % len(files)]


def test_capture_files_parse_and_match_the_traffic(server, artifact) -> None:
    body = serving_models.image_files(artifact[0])[2][0].read_bytes()
    status, headers, response, _ = invoke(
        server, body, "image/jpeg", **{"X-Amzn-SageMaker-Inference-Id": "capture-check"}
    )
    assert status == 200
    records = list(capture_format.iter_capture_records(server.capture_dir))
    # Every successful invocation so far is captured (100%), failed ones are not.
    assert len(records) == sum(1 for s in server.statuses if s == 200)
    files = list(server.capture_dir.rglob("*.jsonl"))
    relative = files[0].relative_to(server.capture_dir).parts
    assert relative[:2] == (ENDPOINT, "AllTraffic") and len(relative) == 7
    (mine,) = [r for r in records if r.inference_id == "capture-check"]
    assert mine.event_id == headers["X-Dogbreeds-Event-Id"]
    assert mine.endpoint_input.observed_content_type == "image/jpeg"
    assert mine.endpoint_input.raw_bytes() == body
    assert mine.endpoint_output.encoding == "JSON"
    assert mine.endpoint_output.json() == json.loads(response)
    assert {r.inference_id for r in records} >= {f"parallel-{i}" for i in range(24)}


def test_overlong_inference_id_is_refused(server, artifact) -> None:
    body = serving_models.image_files(artifact[0])[0][0].read_bytes()
    status, _, payload, _ = invoke(
        server, body, "image/jpeg", **{"X-Amzn-SageMaker-Inference-Id": "x" * 65}
    )
    assert status == 400 and b"1 to 64 characters" in payload


def test_model_directory_with_env_overrides_zero_capture_and_sigint(artifact, tmp_path) -> None:
    """--model gets the pipeline's environment plus --env; the toolkit and the handler read it."""
    running = serving_models.start_server(
        artifact[1], "--capture-dir", str(tmp_path), "--capture-percent", "0",
        "--env", "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT=text/csv",
        "--env", "DOGBREEDS_MODEL_VERSION=from-env",
    )  # fmt: skip
    try:
        assert running.startup["model_package"] is None
        assert running.startup["environment"] == {
            "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
            "SAGEMAKER_PROGRAM": "inference.py",
            "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
            "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv",
            "DOGBREEDS_MODEL_VERSION": "from-env",
        }
        body = serving_models.image_files(artifact[0])[0][0].read_bytes()
        # A missing or */* Accept becomes SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT, which the
        # handler cannot produce.
        assert invoke(running, body, "image/jpeg")[0] == 406
        assert invoke(running, body, "image/jpeg", Accept="*/*")[0] == 406
        status, _, payload, _ = invoke(running, body, "image/jpeg", Accept="application/json")
        assert status == 200 and json.loads(payload)["model_version"] == "from-env"
    finally:
        code, output = running.stop(signal.SIGINT)
    assert code == 0 and "stopped" in output, output
    assert not list(tmp_path.rglob("*.jsonl"))


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dogbreeds", "local", "serve", *args],
        cwd=REPO_ROOT, env=serving_models.subprocess_env(), capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip


def test_empty_sagemaker_program_fails_at_load_as_on_aws(workdir) -> None:
    """The toolkit then ignores code/inference.py and its default model_fn wants TorchScript."""
    result = run_cli("--version", "2", "--group", GROUP, "--workdir", str(workdir), "--port", "0")
    assert result.returncode == 2, result.stdout + result.stderr
    assert not result.stdout.strip()  # it never listened
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith(f"cannot serve {GROUP} version 2: the model failed to load")
    assert "SAGEMAKER_PROGRAM is empty" in message and "TorchScript" in message


def test_bad_command_line_is_refused_with_a_reason(tmp_path, workdir) -> None:
    cases = [
        (["--model", str(tmp_path / "none")], "does not exist"),
        (["--model", str(tmp_path), "--capture-percent", "150"], "between 0 and 100"),
        (["--model", str(tmp_path), "--version", "1"], "not allowed with argument"),
        ([], "one of the arguments --version --model is required"),
        (["--model", str(tmp_path), "--env", "NO_EQUALS_SIGN"], "NAME=VALUE"),
        (["--version", "1", "--workdir", str(workdir), "--env", "A=b"], "--env applies to --model"),
        (["--version", "9", "--workdir", str(workdir)], "has no version 9"),
        (["--model", str(tmp_path), "--header-timeout", "0"], "--header-timeout must be above 0"),
        (["--model", str(tmp_path), "--max-connections", "0"], "--max-connections at least 1"),
    ]
    for args, reason in cases:
        result = run_cli(*args)
        assert result.returncode == 2 and reason in result.stderr, (args, result.stderr)


def test_front_end_survives_vanishing_trickling_and_crowding_clients(artifact) -> None:
    """The command's --header-timeout and --max-connections, and a client that leaves early."""
    running = serving_models.start_server(
        artifact[1], "--header-timeout", "1", "--max-connections", "1"
    )
    address = (urlparse(running.url).hostname, urlparse(running.url).port)
    body = serving_models.image_files(artifact[0])[0][0].read_bytes()
    try:
        # Sends a whole invocation, then resets the connection without reading the answer.
        gone = socket.create_connection(address, timeout=10)
        gone.sendall(
            b"POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Type: image/jpeg\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
        )
        gone.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        gone.close()
        # Its thread holds the only slot until the model has answered into the void.
        deadline = time.monotonic() + 30
        while request(running.url, "GET", "/ping")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)  # and the thread of that last ping has let its slot go
        # A head that never completes holds the only slot until the deadline; meanwhile
        # another client is refused.
        slow = socket.create_connection(address, timeout=10)
        slow.sendall(b"GET /ping HTTP/1.1\r\nHo")
        time.sleep(0.3)
        crowded = socket.create_connection(address, timeout=10)
        crowded.sendall(b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n")
        assert crowded.recv(65536).startswith(b"HTTP/1.1 503 ")
        crowded.close()
        assert slow.recv(65536).startswith(b"HTTP/1.1 408 ")
        slow.close()
        time.sleep(0.2)
        assert invoke(running, body, "image/jpeg")[0] == 200
    finally:
        code, output = running.stop(signal.SIGTERM)
    assert code == 0 and "stopped" in output, output
    assert "Traceback" not in output, output
    assert "connection lost" in output and "answered 408" in output and "refused with 503" in output


def test_a_truncated_model_archive_is_refused_on_one_line(tmp_path) -> None:
    archive = serving_models.truncated_archive(tmp_path / "model.tar.gz")
    result = run_cli("--model", str(archive), "--port", "0")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"cannot read the model archive {archive}: " in lines[0]
