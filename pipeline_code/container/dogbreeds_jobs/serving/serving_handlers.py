"""Load a model artifact's own ``code/inference.py`` and call it the way SageMaker's toolkit does.

The evaluation step and the benchmark must exercise exactly what an endpoint runs, in images that
have no inference toolkit: the handler code shipped inside ``model.tar.gz`` (not the copy in this
repository), called in the toolkit's order with the toolkit's defaults and its exception-to-status
mapping (``sagemaker_inference.transformer.Transformer.transform``). ``dogbreeds local serve`` does
not use this module: it runs the installed toolkit itself (``dogbreeds/inference_worker.py``).

* a missing Accept or ``*/*`` becomes ``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT`` (application/json);
* a body whose Content-Type is exactly ``application/json`` or ``text/csv`` is decoded to ``str``;
* ``output_fn`` may return ``(body, content_type)``;
* an exception with ``status_code`` (a ``BaseInferenceToolkitError``) gives that status; any other
  exception gives 500.
"""

from __future__ import annotations

import logging
import os
import tarfile
import traceback
import zlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from ..isolated_import import import_isolated

LOG = logging.getLogger("serving_handlers")

# The toolkit's sagemaker_inference.content_types.UTF8_TYPES.
UTF8_TYPES = ("application/json", "text/csv")


class ModelLoadError(RuntimeError):
    """The model path does not hold a servable artifact; the message says what is missing."""


@dataclass(frozen=True)
class InvocationResult:
    """One HTTP answer: status code, body bytes and its Content-Type."""

    status: int
    body: bytes
    content_type: str


def extract_model_archive(archive: Path, destination: Path) -> Path:
    """Unpack ``model.tar.gz`` as SageMaker does into /opt/ml/model, refusing unsafe members."""
    destination.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            if hasattr(tarfile, "data_filter"):
                # Rejects absolute paths, ".." and links out of the folder (PEP 706).
                tar.extractall(destination, filter="data")
            else:  # pragma: no cover - Pythons before 3.11.4 lack extraction filters
                for member in tar.getmembers():
                    target = (destination / member.name).resolve()
                    if not target.is_relative_to(destination.resolve()) or member.issym():
                        raise ModelLoadError(f"{archive}: unsafe member {member.name!r}")
                tar.extractall(destination)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        # A truncated gzip stream raises EOFError, corrupt deflate data zlib.error.
        raise ModelLoadError(f"cannot read the model archive {archive}: {error}") from error
    return destination


def resolve_model_dir(model_path: Path, scratch_dir: Path) -> Path:
    """A model directory as is, or a ``.tar.gz`` (or a folder holding ``model.tar.gz``) unpacked."""
    model_path = Path(model_path)
    if model_path.is_dir() and (model_path / "model.tar.gz").is_file():
        model_path = model_path / "model.tar.gz"
    if model_path.is_file():
        if not model_path.name.endswith((".tar.gz", ".tgz", ".tar")):
            raise ModelLoadError(
                f"{model_path} is a file but not a model archive; give a model directory or a "
                "model.tar.gz"
            )
        model_path = extract_model_archive(model_path, scratch_dir)
    if not model_path.is_dir():
        raise ModelLoadError(f"model path {model_path} does not exist")
    if not (model_path / "code" / "inference.py").is_file():
        raise ModelLoadError(
            f"{model_path} has no code/inference.py; the artifact must carry its inference code "
            "(training writes it into the model directory)"
        )
    return model_path


def load_handler_module(code_dir: Path) -> ModuleType:
    """Import ``code_dir/inference.py`` with ``code_dir`` first on ``sys.path``, as containers do.

    The artifact's handler binds to the artifact's own helper modules and the host process keeps its
    own (``import_isolated``). Imports a handler makes lazily later (inside ``model_fn``) resolve
    against the host's ``sys.path``; in this project those are torchvision and the vendored
    EfficientNet-Lite, which backbones.py loads from the folder beside itself.
    """
    code_dir = Path(code_dir).resolve()
    if not (code_dir / "inference.py").is_file():
        raise ModelLoadError(f"cannot import {code_dir / 'inference.py'}: there is no such file")
    module = import_isolated(code_dir, "inference")
    for name in ("model_fn", "input_fn", "predict_fn", "output_fn"):
        if not callable(getattr(module, name, None)):
            raise ModelLoadError(f"{code_dir / 'inference.py'} does not define {name}()")
    return module


class HandlerService:
    """A loaded model plus its handler module; ``invoke`` is one /invocations request."""

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = Path(model_dir)
        self.module = load_handler_module(self.model_dir / "code")
        self.model = self.module.model_fn(str(self.model_dir))
        self.default_accept = os.environ.get(
            "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "application/json"
        )

    @property
    def handler_globals(self) -> dict:
        """The namespace the handlers run in: code/'s ``dogbreeds_jobs/serving/inference.py``, which
        ``code/inference.py`` (what the toolkit imports) re-exports the four handlers from."""
        return self.module.model_fn.__globals__

    @property
    def model_version(self) -> str:
        return str(getattr(self.model, "version", "unknown"))

    def invoke(self, body: bytes, content_type: str | None, accept: str | None) -> InvocationResult:
        """Run input_fn -> predict_fn -> output_fn; map errors as the toolkit does."""
        if not accept or accept.strip() == "*/*":
            accept = self.default_accept
        try:
            data: bytes | str = body
            if content_type in UTF8_TYPES:
                try:
                    data = body.decode("utf-8")
                except UnicodeDecodeError as error:
                    # The real toolkit lets this escape as a 500; a client error is honest.
                    return _error(400, f"the {content_type} body is not valid UTF-8: {error}")
            payload = self.module.input_fn(data, content_type)
            prediction = self.module.predict_fn(payload, self.model)
            result = self.module.output_fn(prediction, accept)
        except Exception as error:  # noqa: BLE001 - every failure must become a response
            status = getattr(error, "status_code", None)
            if isinstance(status, int) and 400 <= status < 600:
                return _error(int(status), str(getattr(error, "message", error)))
            LOG.error("handler failed:\n%s", traceback.format_exc())
            return _error(500, f"internal error: {error}")
        response, response_type = result if isinstance(result, tuple) else (result, accept)
        if isinstance(response, str):
            response = response.encode("utf-8")
        return InvocationResult(200, bytes(response), response_type)


def _error(status: int, message: str) -> InvocationResult:
    return InvocationResult(status, message.encode("utf-8"), "text/plain; charset=utf-8")
