"""The model side of `dogbreeds local serve`: TorchServe's Python worker, run in this process.

On a SageMaker endpoint the PyTorch inference container (sagemaker-pytorch-inference) starts
TorchServe. TorchServe's Java frontend starts a Python worker (``ts/model_service_worker.py``) that
loads the model with ``ts.model_loader.TsModelLoader`` and the handler
``sagemaker_pytorch_serving_container.handler_service`` (the inference toolkit's ``HandlerService``,
whose ``sagemaker_inference`` Transformer reads ``SAGEMAKER_PROGRAM`` and the other container
variables to find the user module in ``<model dir>/code``), then answers every request with
``ts.service.Service.predict``. This module does the worker's part with those same installed
classes; the frontend's part is reproduced in a few lines and says where it comes from:

* the process gets exactly the model package's container environment (``prepare_process``);
* ``sys.path`` starts as the worker's ``PYTHONPATH`` does: the handler's folder, then the model's
  ``code/`` (sagemaker-pytorch-inference puts ``/opt/ml/model/code`` there), and ends with the
  model folder (TorchServe's ``EnvironmentUtils.getEnvString``);
* each request reaches ``Service.predict`` as the frontend encodes it: a request id, every HTTP
  header, and one ``body`` parameter holding the raw bytes (the container's TorchServe config sets
  ``decode_input_request=false``, so the worker never parses the body);
* the encoded answer is read back the way the frontend reads it (``ModelResponseDecoder``) and
  turned into an HTTP answer the way ``BatchAggregator``/``RestJob`` do.

TorchServe runs one request at a time per worker and keeps per-request state on the service's
context, so calls into the service are serialized here; the local server is one worker.
"""

from __future__ import annotations

import importlib.util
import json
import os
import struct
import sys
import tarfile
import threading
import uuid
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# What sagemaker_pytorch_serving_container.serving passes TorchServe as the default handler:
# the module's file, with ":handle".
HANDLER_MODULE = "sagemaker_pytorch_serving_container.handler_service"
# sagemaker_pytorch_serving_container.torchserve.DEFAULT_TS_MODEL_NAME.
MODEL_NAME = "model"
# TorchServe's default batch size; the container sets no other.
BATCH_SIZE = 1
# Variables that the toolkit, TorchServe's worker or this project's handler code read. A container
# has only the ones the model package sets, so any of these inherited from this shell is dropped.
CONTAINER_VARIABLE_PREFIXES = ("SAGEMAKER_", "TS_", "DOGBREEDS_")
# This repository's copy of the container code; on the host it is on sys.path (see
# pipeline_code/container/__init__.py), in a container it is not.
REPOSITORY_CODE_DIR = Path(__file__).resolve().parents[1] / "pipeline_code" / "container"


class ModelLoadError(Exception):
    """The model could not be loaded; the message is one line and says why."""


@dataclass(frozen=True)
class WorkerAnswer:
    """One HTTP answer as TorchServe's frontend would send it."""

    status: int
    reason: str | None  # the reason phrase the handler set, if any
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @property
    def content_type(self) -> str | None:
        for name, value in self.headers:
            if name.lower() == "content-type":
                return value
        return None


# -- the model artifact ---------------------------------------------------------------------------
def unpack_model_data(model_path: Path, scratch_dir: Path) -> Path:
    """A model folder as it is; a ``model.tar.gz`` (or a folder holding one) unpacked as SageMaker
    unpacks ModelDataUrl into /opt/ml/model. What the folder must hold is the toolkit's business."""
    model_path = Path(model_path)
    if model_path.is_dir() and (model_path / "model.tar.gz").is_file():
        model_path = model_path / "model.tar.gz"
    if model_path.is_file():
        if not model_path.name.endswith((".tar.gz", ".tgz", ".tar")):
            raise ModelLoadError(
                f"{model_path} is a file but not a model archive; give a model folder or a model.tar.gz"
            )
        destination = Path(scratch_dir) / "model"
        destination.mkdir(parents=True, exist_ok=True)
        try:
            with tarfile.open(model_path, "r:*") as tar:
                # Refuses absolute paths, ".." and links out of the folder (PEP 706).
                tar.extractall(destination, filter="data")
        except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
            # A truncated gzip stream raises EOFError, corrupt deflate data zlib.error.
            raise ModelLoadError(f"cannot read the model archive {model_path}: {error}") from error
        return destination
    if not model_path.is_dir():
        raise ModelLoadError(f"model path {model_path} does not exist")
    return model_path


# -- the worker process ---------------------------------------------------------------------------
def prepare_process(model_dir: Path, environment: Mapping[str, str]) -> list[str]:
    """Make this process look like the endpoint's worker before anything of the toolkit is imported.

    Sets exactly ``environment`` (the model package's container Environment), drops inherited
    variables a container would not have (returned, to be reported), and lays out ``sys.path`` as the
    worker's PYTHONPATH does. Modules this process already imported from this repository's copy of
    the container code are set aside, so the artifact's own copies are the ones that load.
    """
    dropped = sorted(
        name
        for name in os.environ
        if name.startswith(CONTAINER_VARIABLE_PREFIXES) and name not in environment
    )
    for name in dropped:
        del os.environ[name]
    os.environ.update(environment)

    code_dir = Path(model_dir) / "code"
    sys.path[:] = [entry for entry in sys.path if _resolved(entry) != REPOSITORY_CODE_DIR]
    local_names = {path.stem for path in code_dir.glob("*.py")} | {
        path.parent.name for path in code_dir.glob("*/__init__.py")
    }
    for name in [name for name in sys.modules if name.split(".", 1)[0] in local_names]:
        del sys.modules[name]
    handler_dir = str(Path(handler_entry_point().split(":", 1)[0]).parent)
    sys.path[0:0] = [handler_dir, str(code_dir)]
    sys.path.append(str(model_dir))
    return dropped


def _resolved(entry: str) -> Path | None:
    try:
        return Path(entry or ".").resolve()
    except OSError:
        return None


def handler_entry_point() -> str:
    """``<site-packages>/sagemaker_pytorch_serving_container/handler_service.py:handle``."""
    spec = importlib.util.find_spec(HANDLER_MODULE)
    if spec is None or spec.origin is None:
        raise ModelLoadError(f"{HANDLER_MODULE} is not installed (pip install sagemaker-pytorch-inference)")
    return f"{spec.origin}:handle"


def user_module_name() -> str:
    """The module the toolkit looks for, from SAGEMAKER_PROGRAM (default inference.py)."""
    from sagemaker_inference.environment import Environment

    return Environment().module_name or ""


def user_module_file() -> str | None:
    """Where the toolkit's user module was loaded from; None when it fell back to its defaults."""
    module = sys.modules.get(user_module_name()) if user_module_name() else None
    return getattr(module, "__file__", None)


# -- loading and invoking -------------------------------------------------------------------------
class InferenceWorker:
    """A loaded ``ts.service.Service``; ``invoke`` is one request through it."""

    def __init__(self, service: Any) -> None:
        self._service = service
        self._service.set_cl_socket(None)  # no frontend socket: answers come back as return values
        self._lock = threading.Lock()

    @classmethod
    def load(cls, model_dir: Path) -> InferenceWorker:
        """Load as the worker does on the frontend's load command (after ``prepare_process``)."""
        import ts
        from ts.metrics.metric_cache_yaml_impl import MetricsCacheYamlImpl
        from ts.model_loader import ModelLoaderFactory

        # TorchServe's default metrics_config; the worker always has a metrics cache.
        metrics = MetricsCacheYamlImpl(
            config_file_path=str(Path(ts.__file__).parent / "configs" / "metrics.yaml")
        )
        metrics.initialize_cache()
        metrics.model_name = MODEL_NAME
        try:
            service = ModelLoaderFactory.get_model_loader().load(
                MODEL_NAME,
                str(model_dir),
                handler_entry_point(),
                None,  # gpu id: the worker gets none on a CPU instance
                BATCH_SIZE,
                None,  # envelope
                True,  # limitMaxImagePixels, TorchServe's default
                metrics,
            )
        except Exception as error:  # noqa: BLE001 - the worker dies on any of these; say why
            raise ModelLoadError(describe_load_failure(error)) from error
        return cls(service)

    @property
    def model(self) -> Any:
        """What the handler's model_fn returned (for the start-up report only)."""
        handler_service = getattr(self._service._entry_point, "__self__", None)
        transformer = getattr(handler_service, "_service", None)
        return getattr(transformer, "_model", None)

    def invoke(self, body: bytes, headers: Sequence[tuple[str, str]]) -> WorkerAnswer:
        """One /invocations request: the frontend's batch of one, the worker's encoded answer."""
        request_id = str(uuid.uuid4())
        batch = [frontend_request(request_id, body, headers)]
        with self._lock:
            encoded = self._service.predict(batch)
        return frontend_answer(bytes(encoded))


def describe_load_failure(error: BaseException) -> str:
    """One line: what failed, and what SAGEMAKER_PROGRAM made the toolkit do when that explains it."""
    reason = " ".join(f"{type(error).__name__}: {error}".split())
    program = os.environ.get("SAGEMAKER_PROGRAM")
    try:
        module = user_module_name()
        found = bool(module) and importlib.util.find_spec(module) is not None
    except Exception:  # noqa: BLE001 - a broken name is simply "not found"
        module, found = "", False
    defaults = (
        "so the inference toolkit ignored code/inference.py and used its default handlers, which "
        "load only a TorchScript model.pt"
    )
    if program is not None and not module:
        hint = f"SAGEMAKER_PROGRAM is empty, {defaults}"
    elif not found:
        hint = f"SAGEMAKER_PROGRAM={program!r} names no module in the model's code/, {defaults}"
    else:
        hint = f"SAGEMAKER_PROGRAM={program or 'inference.py'!r}"
    return (
        f"the model failed to load in the inference toolkit ({reason}); {hint}. On AWS the "
        "endpoint's worker fails the same way and the endpoint never passes its ping health check"
    )


# -- TorchServe's frontend, the parts that touch a request ----------------------------------------
def frontend_request(request_id: str, body: bytes, headers: Sequence[tuple[str, str]]) -> dict:
    """The request as ``ts.protocol.otf_message_handler`` decodes what the frontend sends.

    ``InferenceRequestHandler.parseRequest``: every HTTP header (names as received), and the body
    as one parameter named ``body`` whose content type is the header's media type
    (``HttpUtil.getMimeType``: parameters cut off, empty when there is no header). Values cross as
    UTF-8, as the Java strings are encoded.
    """
    content_type = next((value for name, value in headers if name.lower() == "content-type"), None)
    media_type = content_type.split(";", 1)[0].strip() if content_type is not None else ""
    return {
        "requestId": request_id.encode("utf-8"),
        "headers": [
            {"name": name.encode("utf-8"), "value": value.encode("utf-8")} for name, value in headers
        ],
        "parameters": [{"name": "body", "contentType": media_type, "value": bytes(body)}],
    }


def frontend_answer(encoded: bytes) -> WorkerAnswer:
    """The worker's predict response, read and answered as the frontend does.

    Overall code 200: each prediction carries its own status, reason phrase, content type, headers
    and body (``RestJob.responseInference``; the response headers are set after the content type,
    so they win). Any other overall code fails the request with TorchServe's JSON error
    (``BatchAggregator`` -> ``RestJob.sendError``, which reports 413 as 507).
    """
    code, message, predictions = decode_predict_response(encoded)
    if code != 200 or not predictions:
        status = 507 if code == 413 else code
        error = {"code": status, "type": "InternalServerException", "message": message}
        return WorkerAnswer(
            status, None, [("Content-Type", "application/json")],
            (json.dumps(error, indent=2) + "\n").encode("utf-8"),
        )  # fmt: skip
    prediction = predictions[0]
    merged: dict[str, tuple[str, str]] = {}
    if prediction["content_type"]:
        merged["content-type"] = ("Content-Type", prediction["content_type"])
    for name, value in prediction["headers"].items():
        # The handler's headers replace the frontend's (Netty's headers().set); the content type
        # keeps its usual spelling, as SageMaker returns it as ContentType.
        merged[name.lower()] = ("Content-Type" if name.lower() == "content-type" else name, value)
    return WorkerAnswer(
        prediction["status"], prediction["reason"] or None, list(merged.values()), prediction["body"]
    )


def decode_predict_response(encoded: bytes) -> tuple[int, str, list[dict]]:
    """``create_predict_response``'s bytes -> (code, message, predictions): ``ModelResponseDecoder``."""
    offset = 0

    def read_int() -> int:
        nonlocal offset
        (value,) = struct.unpack_from("!i", encoded, offset)
        offset += 4
        return value

    def read_bytes(length: int) -> bytes:
        nonlocal offset
        value = encoded[offset : offset + length]
        offset += length
        return value

    code = read_int()
    message = read_bytes(read_int()).decode("utf-8")
    predictions = []
    while (length := read_int()) != -1:
        request_id = read_bytes(length).decode("utf-8")
        content_type = read_bytes(read_int()).decode("utf-8")
        status = read_int()
        reason = read_bytes(read_int()).decode("utf-8")
        headers = {}
        for _ in range(read_int()):
            name = read_bytes(read_int()).decode("utf-8")
            headers[name] = read_bytes(read_int()).decode("utf-8")
        body = read_bytes(read_int())
        predictions.append(
            {"request_id": request_id, "content_type": content_type, "status": status,
             "reason": reason, "headers": headers, "body": body}
        )  # fmt: skip
    return code, message, predictions
