"""The frontend's part of `local serve`'s worker, checked against TorchServe's own Python codec.

A request must reach ``Service.predict`` exactly as ``ts.protocol.otf_message_handler`` decodes what
TorchServe's Java frontend sends (``ModelRequestEncoder``), and the worker's encoded answer must be
read back as the frontend reads it (``ModelResponseDecoder``, ``RestJob``, ``BatchAggregator``).
"""

from __future__ import annotations

import io
import json
import socket
import struct
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest
from repo_paths import REPO_ROOT

from dogbreeds import inference_worker


def java_encoded_inference_request(request_id: str, headers: list[tuple[str, str]], body: bytes,
                                   content_type: str | None) -> bytes:  # fmt: skip
    """``ModelRequestEncoder.encode`` for a ``ModelInferenceRequest`` holding one request whose
    body parameter is ``InputParameter("body", content, HttpUtil.getMimeType(req))``."""

    def field(value: str | None) -> bytes:
        data = (value or "").encode("utf-8")
        return struct.pack("!i", len(data)) + data

    out = b"I" + field(request_id)
    for name, value in headers:
        out += field(name) + field(value)
    out += struct.pack("!i", -1)
    out += field("body") + field(content_type) + struct.pack("!i", len(body)) + body
    out += struct.pack("!i", -1)  # end of parameters
    return out + struct.pack("!i", -1)  # end of batch


def decode_as_the_worker_does(message: bytes, monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    from ts.protocol import otf_message_handler

    # The PyTorch container's TorchServe config: decode_input_request=false.
    monkeypatch.setenv("TS_DECODE_INPUT_REQUEST", "false")
    reader, writer = socket.socketpair()
    try:
        sender = threading.Thread(target=writer.sendall, args=(message,))
        sender.start()
        command, batch = otf_message_handler.retrieve_msg(reader)
        sender.join()
    finally:
        reader.close()
        writer.close()
    assert command == b"I"
    return batch


@pytest.mark.parametrize(
    ("headers", "body", "media_type"),
    [
        ([("Content-Type", "image/jpeg"), ("Accept", "application/json"), ("Content-Length", "4")],
         b"\xff\xd8\xff\xe0", "image/jpeg"),
        ([("content-type", "application/json; charset=utf-8"), ("X-Amzn-SageMaker-Custom-Attributes", "a=b")],
         b'{"image": "\xff"}', "application/json"),
        ([("Accept", "*/*")], b"raw", None),
    ],
)  # fmt: skip
def test_requests_reach_the_service_as_the_frontend_sends_them(
    headers, body, media_type, monkeypatch
) -> None:
    expected = decode_as_the_worker_does(
        java_encoded_inference_request("req-1", headers, body, media_type), monkeypatch
    )
    assert [inference_worker.frontend_request("req-1", body, headers)] == expected


def prediction_context(status: int, phrase: str | None, content_type: str | None):
    from ts.context import Context, RequestProcessor

    context = Context("model", "/opt/ml/model", None, 1, None, "0.12.0")
    context.request_processor = [RequestProcessor({})]
    if content_type:
        context.set_response_content_type(0, content_type)
    if status != 200 or phrase:
        context.set_response_status(code=status, phrase=phrase or "")
    return context


def test_a_prediction_keeps_the_handlers_status_phrase_content_type_and_body() -> None:
    from ts.protocol.otf_message_handler import create_predict_response

    ok = create_predict_response(
        ['{"a": 1}'], {0: "r"}, "Prediction success", 200,
        context=prediction_context(200, None, "application/json"),
    )  # fmt: skip
    answer = inference_worker.frontend_answer(bytes(ok))
    assert (answer.status, answer.reason, answer.body) == (200, None, b'{"a": 1}')
    assert answer.headers == [("Content-Type", "application/json")]

    refused = create_predict_response(
        ["unsupported\nTraceback ..."], {0: "r"}, "Prediction success", 200,
        context=prediction_context(415, "Unsupported Media Type", None),
    )  # fmt: skip
    answer = inference_worker.frontend_answer(bytes(refused))
    assert (answer.status, answer.reason, answer.headers) == (415, "Unsupported Media Type", [])
    assert answer.body == b"unsupported\nTraceback ..."


@pytest.mark.parametrize(("code", "status"), [(503, 503), (507, 507), (413, 507)])
def test_a_failed_batch_gets_torchserves_json_error(code, status) -> None:
    from ts.protocol.otf_message_handler import create_predict_response

    encoded = create_predict_response(None, {0: "r"}, "Prediction failed", code)
    answer = inference_worker.frontend_answer(bytes(encoded))
    assert answer.status == status and answer.content_type == "application/json"
    assert json.loads(answer.body) == {
        "code": status, "type": "InternalServerException", "message": "Prediction failed"
    }  # fmt: skip


def test_model_archives_unpack_safely(tmp_path) -> None:
    good = tmp_path / "good.tar.gz"
    with tarfile.open(good, "w:gz") as tar:
        info = tarfile.TarInfo("code/inference.py")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"pass"))
    unpacked = inference_worker.unpack_model_data(good, tmp_path / "a")
    assert (unpacked / "code" / "inference.py").read_bytes() == b"pass"

    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        info = tarfile.TarInfo("../outside.py")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"pass"))
    with pytest.raises(inference_worker.ModelLoadError, match="cannot read the model archive"):
        inference_worker.unpack_model_data(evil, tmp_path / "b")
    assert not (tmp_path / "outside.py").exists()

    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(inference_worker.ModelLoadError, match="not a model archive"):
        inference_worker.unpack_model_data(tmp_path / "weights.bin", tmp_path / "c")


def test_the_process_gets_exactly_the_packages_environment_and_the_workers_path(tmp_path) -> None:
    """In a fresh interpreter: inherited container variables go, the package's are set, and
    sys.path starts with the handler's folder and the model's code/ (not this repository's)."""
    (tmp_path / "code").mkdir()
    script = (
        "import json, os, sys\n"
        "import pipeline_code.container\n"
        "from dogbreeds import inference_worker as w\n"
        f"dropped = w.prepare_process(__import__('pathlib').Path({str(tmp_path)!r}), "
        "{'SAGEMAKER_PROGRAM': 'inference.py', 'DOGBREEDS_TOP_K': '3'})\n"
        "print(json.dumps({'dropped': dropped, 'path': sys.path[:2], 'last': sys.path[-1],\n"
        "  'repo_code': str(w.REPOSITORY_CODE_DIR) in sys.path,\n"
        "  'env': {k: v for k, v in os.environ.items() if k.startswith(('SAGEMAKER_', 'DOGBREEDS_'))}}))\n"
    )
    env = {
        "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT), "SAGEMAKER_MULTI_MODEL": "true",
        "DOGBREEDS_TOP_K": "1", "DOGBREEDS_MAX_PIXELS": "10", "HOME": str(tmp_path),
    }  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    report = json.loads(result.stdout)
    assert report["dropped"] == ["DOGBREEDS_MAX_PIXELS", "SAGEMAKER_MULTI_MODEL"]
    assert report["env"] == {"SAGEMAKER_PROGRAM": "inference.py", "DOGBREEDS_TOP_K": "3"}
    assert Path(report["path"][0]).name == "sagemaker_pytorch_serving_container"
    assert report["path"][1] == str(tmp_path / "code") and report["last"] == str(tmp_path)
    assert report["repo_code"] is False
