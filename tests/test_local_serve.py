"""`dogbreeds local serve` as a real subprocess on a free loopback port, spoken to over HTTP."""

from __future__ import annotations

import base64
import http.client
import io
import json
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import serve_fixtures  # noqa: E402

from pipeline_code.container import capture_format  # noqa: E402

ENDPOINT = "dogs-local-test"


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(data dir, model dir, model.tar.gz) for a tiny really-trained model."""
    root = tmp_path_factory.mktemp("serve")
    data = serve_fixtures.write_dataset(root / "data", breeds=3, per_breed=8)
    model_dir = serve_fixtures.train_tiny_model(data, root / "model")
    archive = serve_fixtures.pack_model(model_dir, root / "artifact" / "model.tar.gz")
    return data, model_dir, archive


@pytest.fixture(scope="module")
def server(artifact, tmp_path_factory):
    """A server started from model.tar.gz, as SageMaker gets it, capturing every request."""
    capture_dir = tmp_path_factory.mktemp("capture")
    running = serve_fixtures.start_server(
        artifact[2], "--capture-dir", str(capture_dir), "--capture-percent", "100",
        "--endpoint-name", ENDPOINT,
    )  # fmt: skip
    running.capture_dir = capture_dir  # type: ignore[attr-defined]
    running.statuses = []  # type: ignore[attr-defined]
    yield running
    code, output = running.stop(signal.SIGTERM)
    assert code == 0, output
    assert "stopped" in output


def request(
    url: str,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    parsed = urlparse(url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def invoke(server, body: bytes, content_type: str | None, **headers: str):
    all_headers = dict(headers)
    if content_type is not None:
        all_headers["Content-Type"] = content_type
    status, response_headers, payload = request(server.url, "POST", "/invocations", body,
                                                all_headers)  # fmt: skip
    server.statuses.append(status)
    return status, response_headers, payload


def test_ping_and_startup_line(server) -> None:
    assert server.startup["model_version"] == "tiny-test-1"
    assert server.startup["url"].startswith("http://127.0.0.1:")
    status, _, _ = request(server.url, "GET", "/ping")
    assert status == 200
    assert request(server.url, "GET", "/nothing")[0] == 404


def test_invocation_with_sagemaker_headers(server, artifact) -> None:
    path, label = serve_fixtures.image_files(artifact[0])[0]
    status, headers, body = invoke(
        server, path.read_bytes(), "image/jpeg", Accept="application/json",
        **{"X-Amzn-SageMaker-Inference-Id": "order-1",
           "X-Amzn-SageMaker-Custom-Attributes": "trace=abc"},
    )  # fmt: skip
    assert status == 200, body
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Amzn-Invoked-Production-Variant"] == "AllTraffic"
    document = json.loads(body)
    assert document["model_version"] == "tiny-test-1"
    assert document["predictions"][0]["breed"] == label


def odd_and_bad_corpus(data_dir: Path) -> list[tuple[str, bytes, str | None, str | None, int]]:
    """(name, body, content type, accept, expected status)."""
    jpeg = serve_fixtures.image_files(data_dir)[0][0].read_bytes()
    picture = Image.open(io.BytesIO(jpeg)).convert("RGB").resize((300, 200))
    big = io.BytesIO()
    picture.save(big, "JPEG")
    gif = io.BytesIO()
    picture.save(gif, "GIF")
    bomb = serve_fixtures.png_bomb_header(30_000, 30_000)
    pngs = [p.read_bytes() for p, _ in serve_fixtures.image_files(data_dir) if p.suffix == ".png"]
    return [
        ("gif", gif.getvalue(), "image/png", None, 200),
        *[(f"odd png {i}", body, "image/png", None, 200) for i, body in enumerate(pngs)],
        ("empty", b"", "image/jpeg", None, 400),
        ("text as jpeg", b"not a picture at all", "image/jpeg", None, 400),
        ("truncated jpeg", big.getvalue()[: len(big.getvalue()) // 2], "image/jpeg", None, 400),
        ("zeros", bytes(5000), "application/x-image", None, 400),
        ("csv", b"1,2,3", "text/csv", None, 415),
        ("missing content type", jpeg, None, None, 415),
        ("xml accept", jpeg, "image/jpeg", "application/xml", 406),
        ("bad json", b'{"image": ', "application/json", None, 400),
        ("bad utf-8 json", b'{"image": "\xff\xfe"}', "application/json", None, 400),
        ("json bomb", json.dumps({"image": base64.b64encode(bomb).decode()}).encode(),
         "application/json", None, 413),
    ]  # fmt: skip


def test_corpus_of_bad_and_odd_images_gets_status_codes_and_server_keeps_answering(
    server, artifact
) -> None:
    good = serve_fixtures.image_files(artifact[0])[1][0].read_bytes()
    for name, body, content_type, accept, expected in odd_and_bad_corpus(artifact[0]):
        headers = {"Accept": accept} if accept else {}
        status, _, payload = invoke(server, body, content_type, **headers)
        assert status == expected, (name, payload)
        if status >= 400:
            assert payload, f"{name}: an error must say why"
        # The worker survived: it still answers a health check and a real prediction.
        assert request(server.url, "GET", "/ping")[0] == 200, name
        assert invoke(server, good, "image/jpeg")[0] == 200, name


def test_body_over_the_payload_limit_is_413_and_server_survives(server, artifact) -> None:
    status, _, payload = invoke(server, b"\xff" * (7 * 1024 * 1024), "image/jpeg")
    assert status == 413 and b"limit" in payload
    good = serve_fixtures.image_files(artifact[0])[0][0].read_bytes()
    assert invoke(server, good, "image/jpeg")[0] == 200


def test_concurrent_requests_give_the_same_answers_as_sequential_ones(server, artifact) -> None:
    files = [p.read_bytes() for p, _ in serve_fixtures.image_files(artifact[0])[:6]]
    expected = [json.loads(invoke(server, body, "image/jpeg")[2]) for body in files]

    def call(index: int) -> tuple[int, dict]:
        status, _, body = invoke(
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
    body = serve_fixtures.image_files(artifact[0])[2][0].read_bytes()
    status, headers, response = invoke(
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


def test_model_directory_with_zero_capture_and_sigint(artifact, tmp_path) -> None:
    running = serve_fixtures.start_server(
        artifact[1], "--capture-dir", str(tmp_path), "--capture-percent", "0"
    )
    body = serve_fixtures.image_files(artifact[0])[0][0].read_bytes()
    status, _, _ = invoke_url(running.url, body)
    assert status == 200
    code, output = running.stop(signal.SIGINT)
    assert code == 0 and "stopped" in output, output
    assert not list(tmp_path.rglob("*.jsonl"))


def invoke_url(url: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
    return request(url, "POST", "/invocations", body, {"Content-Type": "image/jpeg"})


def test_bad_command_line_is_refused_with_a_reason(tmp_path) -> None:
    missing = subprocess.run(
        [sys.executable, "-m", "dogbreeds", "local", "serve", "--model", str(tmp_path / "none")],
        cwd=serve_fixtures.REPO_ROOT, env=serve_fixtures.subprocess_env(), capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    percent = subprocess.run(
        [sys.executable, "-m", "dogbreeds", "local", "serve", "--model", str(tmp_path),
         "--capture-percent", "150"],
        cwd=serve_fixtures.REPO_ROOT, env=serve_fixtures.subprocess_env(), capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert percent.returncode == 2 and "between 0 and 100" in percent.stderr
    slots = subprocess.run(
        [sys.executable, "-m", "dogbreeds", "local", "serve", "--model", str(tmp_path),
         "--max-concurrent", "0"],
        cwd=serve_fixtures.REPO_ROOT, env=serve_fixtures.subprocess_env(), capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert slots.returncode == 2 and "at least 1" in slots.stderr


def test_overlong_inference_id_is_refused(server, artifact) -> None:
    body = serve_fixtures.image_files(artifact[0])[0][0].read_bytes()
    status, _, payload = invoke(
        server, body, "image/jpeg", **{"X-Amzn-SageMaker-Inference-Id": "x" * 65}
    )
    assert status == 400 and b"1 to 64 characters" in payload
