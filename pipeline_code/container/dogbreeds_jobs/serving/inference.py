"""Inference handlers for the SageMaker PyTorch inference container (``code/inference.py``).

The container's inference toolkit calls ``model_fn(model_dir)`` once, then for every request
``input_fn(body, content_type)`` -> ``predict_fn(data, model)`` ->
``output_fn(prediction, accept)``.
The same four functions run in local serving (``dogbreeds local serve``), in the evaluation step and
in the benchmark, so the metrics the pipeline gates on are measured through production's code path.

Errors: the toolkit turns an exception that subclasses
``sagemaker_inference.errors.BaseInferenceToolkitError`` into a response with that exception's
``status_code`` (and its message in the body); any other exception becomes a 500. So every bad input
raises ``RequestError`` (a subclass of it, or of an equivalent fallback when the toolkit is not
installed) with the right 4xx, and nothing a client sends can kill the worker: the payload size, the
batch size and the pixel count are capped before anything large is allocated.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import warnings
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from contract.environment_variables import MODEL_VERSION

from ..data import image_decoding
from . import model_artifact

try:  # present in the SageMaker PyTorch inference containers
    from sagemaker_inference.errors import BaseInferenceToolkitError
except ImportError:  # local mode, evaluation and tests: the same contract, without the toolkit

    class BaseInferenceToolkitError(Exception):  # type: ignore[no-redef]
        """Stand-in with the toolkit's constructor and attributes (status_code, message, phrase)."""

        def __init__(self, status_code: int, message: str, phrase: str) -> None:
            self.status_code = status_code
            self.message = message
            self.phrase = phrase
            super().__init__(status_code, message, phrase)


JSON = "application/json"
IMAGE_CONTENT_TYPES = ("image/jpeg", "image/png", "application/x-image")
SUPPORTED_CONTENT_TYPES = (*IMAGE_CONTENT_TYPES, JSON)

# SageMaker real-time endpoints refuse bodies over 6 MB before they reach the container; the same
# cap here protects local serving and keeps a base64 JSON batch from growing without bound.
MAX_PAYLOAD_BYTES = int(os.environ.get("DOGBREEDS_MAX_PAYLOAD_BYTES", 6 * 1024 * 1024))
# A bounded batch: enough to amortise a request, small enough that one request cannot hog a worker.
MAX_BATCH_IMAGES = int(os.environ.get("DOGBREEDS_MAX_BATCH_IMAGES", 16))
# Pixel cap per image, checked from the header before decoding (a decompression bomb costs nothing).
MAX_PIXELS = int(os.environ.get("DOGBREEDS_MAX_PIXELS", 40_000_000))
DEFAULT_TOP_K = int(os.environ.get("DOGBREEDS_TOP_K", 5))
# Decoding a JPEG at a reduced DCT scale is the main saving on large photos; "0" turns it off when
# bit-for-bit agreement with a full decode matters more than speed.
JPEG_DRAFT = os.environ.get("DOGBREEDS_JPEG_DRAFT", "1") != "0"


class RequestError(BaseInferenceToolkitError):
    """A client error the toolkit sends back with ``status_code`` and ``message``."""

    def __init__(self, status_code: int, message: str) -> None:
        # The phrase becomes the HTTP reason phrase: keep it the standard one, one line.
        super().__init__(status_code, message, HTTPStatus(status_code).phrase)

    def __str__(self) -> str:
        return f"{self.status_code}: {self.message}"


@dataclass
class ServingModel:
    """What ``model_fn`` returns: the network plus everything needed to use it the training way."""

    module: torch.nn.Module
    classes: list[str]
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    version: str
    device: torch.device
    top_k: int


@dataclass
class ImageBatch:
    """What ``input_fn`` returns: header-checked images, not yet decoded.

    Pixels are decoded in ``predict_fn`` because only the model knows the input size, and a JPEG
    decoded straight at a reduced scale costs less than a full decode and a larger resize.
    """

    images: list[image_decoding.OpenedImage]


@dataclass
class Prediction:
    """What ``predict_fn`` returns: per image, the top-k class indices and probabilities."""

    indices: list[list[int]]
    probabilities: list[list[float]]
    classes: list[str]
    version: str


def model_fn(model_dir: str) -> ServingModel:
    """Load the model directory written by training (weights, classes.json, metadata.json)."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    loaded = model_artifact.load_model(model_dir, device)
    module = optimise_for_inference(loaded.module.to(device).eval(), int(loaded.image_size), device)
    return ServingModel(
        module=module,
        classes=list(loaded.classes),
        image_size=int(loaded.image_size),
        mean=tuple(float(v) for v in loaded.mean),
        std=tuple(float(v) for v in loaded.std),
        version=model_version(model_dir, loaded.metadata),
        device=device,
        top_k=max(1, min(DEFAULT_TOP_K, len(loaded.classes))),
    )


def optimise_for_inference(
    module: torch.nn.Module, image_size: int, device: torch.device
) -> torch.nn.Module:
    """Fold BatchNorm into the convolutions and switch to channels_last, if that changes nothing.

    Both are plain eager PyTorch (no compiler, no new dependency) and cut CPU latency by about a
    sixth for ResNets. The optimised module is checked against the original on a random batch and
    dropped, with a warning, if it disagrees or cannot be traced (e.g. data-dependent control flow).
    """
    try:
        from torch.fx.experimental.optimization import fuse

        candidate = fuse(module).to(memory_format=torch.channels_last).eval()
        probe = torch.randn(2, 3, image_size, image_size, device=device)
        with torch.inference_mode():
            expected = module(probe)
            got = candidate(probe.contiguous(memory_format=torch.channels_last))
        if torch.allclose(expected, got, rtol=1e-3, atol=1e-3):
            return candidate
        warnings.warn("fused model disagrees with the original; serving it unfused", stacklevel=2)
    except Exception as error:  # noqa: BLE001 - any tracing failure just means "no fusion"
        warnings.warn(f"cannot fuse the model ({error}); serving it unfused", stacklevel=2)
    return module.to(memory_format=torch.channels_last)


def model_version(model_dir: str | Path, metadata: dict[str, Any]) -> str:
    """The version reported with every prediction, so captured traffic names the model it hit.

    Deployment may set ``DOGBREEDS_MODEL_VERSION`` (e.g. the model package ARN); otherwise the
    training metadata's ``model_version``; otherwise a content hash of the artifact, which at least
    tells two models apart.
    """
    explicit = os.environ.get(MODEL_VERSION) or metadata.get("model_version")
    if explicit:
        return str(explicit)
    digest = hashlib.sha256()
    root = Path(model_dir)
    files = [p for p in root.rglob("*") if p.is_file() and p.relative_to(root).parts[0] != "code"]
    for path in sorted(files):
        digest.update(path.relative_to(root).as_posix().encode())
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return f"sha256-{digest.hexdigest()[:16]}"


def _media_type(header: str | None) -> str:
    """``"Image/JPEG; charset=x"`` -> ``"image/jpeg"``; parameters do not change the body."""
    return (header or "").split(";", 1)[0].strip().lower()


def input_fn(input_data: bytes | bytearray | str, content_type: str | None) -> ImageBatch:
    """Check the request envelope and each image's header; refuse with 4xx, never 500."""
    media_type = _media_type(content_type)
    if media_type not in SUPPORTED_CONTENT_TYPES:
        shown = f"{content_type!r}" if content_type else "no Content-Type"
        raise RequestError(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            f"unsupported content type {shown}; send one of {', '.join(SUPPORTED_CONTENT_TYPES)}",
        )
    if input_data is None:
        input_data = b""
    size = len(input_data.encode("utf-8") if isinstance(input_data, str) else input_data)
    if size > MAX_PAYLOAD_BYTES:
        raise RequestError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            f"payload of {size} bytes is over the limit of {MAX_PAYLOAD_BYTES} bytes",
        )
    if size == 0:
        raise RequestError(HTTPStatus.BAD_REQUEST, "the request body is empty; send an image")
    if media_type == JSON:
        encoded_images = _images_from_json(input_data)
    else:
        try:
            encoded_images = [
                bytes(input_data.encode("latin-1") if isinstance(input_data, str) else input_data)
            ]
        except UnicodeEncodeError as error:  # text that was never image bytes
            raise RequestError(
                HTTPStatus.BAD_REQUEST, f"the {media_type} body is text, not image bytes"
            ) from error
    images = []
    for position, data in enumerate(encoded_images):
        try:
            images.append(image_decoding.open_image(data, max_pixels=MAX_PIXELS))
        except image_decoding.ImageDecodeError as error:
            raise _decode_error_to_request_error(error, position, len(encoded_images)) from error
    return ImageBatch(images=images)


def _images_from_json(input_data: bytes | bytearray | str) -> list[bytes]:
    """``{"image": b64}`` or ``{"instances": [b64 | {"image": b64}, ...]}`` -> raw image bytes."""
    try:
        text = input_data if isinstance(input_data, str) else bytes(input_data).decode("utf-8")
        document = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RequestError(
            HTTPStatus.BAD_REQUEST, f"the body is not valid JSON: {error}"
        ) from error
    if not isinstance(document, dict) or not ({"image", "instances"} & document.keys()):
        raise RequestError(
            HTTPStatus.BAD_REQUEST,
            'JSON body must be an object {"image": <base64>} or {"instances": [<base64>, ...]}',
        )
    if "image" in document:
        return [_decode_base64(document["image"], "image")]
    instances = document["instances"]
    if not isinstance(instances, list) or not instances:
        raise RequestError(HTTPStatus.BAD_REQUEST, '"instances" must be a non-empty list')
    if len(instances) > MAX_BATCH_IMAGES:
        raise RequestError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            f'"instances" holds {len(instances)} images; at most {MAX_BATCH_IMAGES} per request',
        )
    decoded = []
    for position, instance in enumerate(instances):
        if isinstance(instance, dict):
            instance = instance.get("image")
        decoded.append(_decode_base64(instance, f"instances[{position}]"))
    return decoded


def _decode_base64(value: Any, where: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"{where} must be a non-empty base64 string")
    # Data URLs ("data:image/jpeg;base64,...") are what browsers produce; accept them too.
    if value.startswith("data:") and "," in value:
        value = value.split(",", 1)[1]
    try:
        return base64.b64decode(re.sub(r"\s+", "", value), validate=True)
    except (binascii.Error, ValueError) as error:
        raise RequestError(
            HTTPStatus.BAD_REQUEST, f"{where} is not valid base64: {error}"
        ) from error


def _decode_error_to_request_error(
    error: image_decoding.ImageDecodeError, position: int, count: int
) -> RequestError:
    where = f"image {position}" if count > 1 else "image"
    status = (
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE
        if isinstance(error, image_decoding.ImageTooLargeError)
        else HTTPStatus.BAD_REQUEST
    )
    allowed = f"; allowed formats: {', '.join(image_decoding.ALLOWED_FORMATS)}"
    suffix = allowed if error.reason in ("not_an_image", "unsupported_format") else ""
    return RequestError(status, f"{where}: {error}{suffix}")


# PIL's reducing_gap as preprocess uses it: below a 2 x 2.0 = 4x downscale PIL resamples in one
# step, so resizing only the centred box equals resizing everything and cropping.
REDUCING_GAP = 2.0


def resize_for_model(image: Image.Image, image_size: int) -> Image.Image:
    """Training's evaluation geometry (metadata ``eval_transform``): shorter side to
    ``image_size`` (bilinear, antialiased), then the centred ``image_size`` square.

    What preprocess's ``cache_array`` does at that size (a test holds them together; it is
    repeated here because preprocess.py does not ship in the model artifact). Under a 4x
    downscale only the centred box is resampled, which is a third cheaper and equal to within one
    grey level on a few pixels; larger downscales take cache_array's exact path.
    """
    width, height = image.size
    if (width, height) == (image_size, image_size):
        return image
    scale = image_size / min(width, height)
    new_width = max(image_size, round(width * scale))
    new_height = max(image_size, round(height * scale))
    left = (new_width - image_size) // 2
    top = (new_height - image_size) // 2
    if 1.0 < min(width, height) / image_size < 2 * REDUCING_GAP:
        step_x, step_y = width / new_width, height / new_height
        box = (left * step_x, top * step_y, (left + image_size) * step_x,
               (top + image_size) * step_y)  # fmt: skip
        return image.resize((image_size, image_size), Image.Resampling.BILINEAR, box=box)
    resized = image.resize(
        (new_width, new_height), Image.Resampling.BILINEAR, reducing_gap=REDUCING_GAP
    )
    return resized.crop((left, top, left + image_size, top + image_size))


def to_normalised_batch(
    images: list[Image.Image],
    mean: tuple[float, ...],
    std: tuple[float, ...],
    device: torch.device | None = None,
) -> torch.Tensor:
    """Same-sized RGB images -> normalised float NCHW batch in channels_last memory order.

    The uint8 HWC pixels are viewed as NCHW without a copy (that view *is* channels_last, the
    layout oneDNN and cuDNN convolutions prefer), moved to ``device`` while still uint8 (a quarter
    of the float bytes), then converted and normalised in place there.
    """
    pixels = torch.from_numpy(np.stack([np.asarray(image, dtype=np.uint8) for image in images]))
    if device is not None and device.type != "cpu":
        pixels = pixels.pin_memory().to(device, non_blocking=True)
    batch = pixels.permute(0, 3, 1, 2).float()  # keeps the channels_last strides
    offset = torch.tensor(mean, dtype=torch.float32, device=batch.device).view(1, 3, 1, 1) * 255.0
    scale = torch.tensor(std, dtype=torch.float32, device=batch.device).view(1, 3, 1, 1) * 255.0
    return batch.sub_(offset).div_(scale)


def preprocess(
    image: Image.Image, image_size: int, mean: tuple[float, ...], std: tuple[float, ...]
) -> torch.Tensor:
    """RGB PIL image -> normalised CHW float tensor, exactly as ``predict_fn`` prepares it.

    Equals torchvision's ``Resize(S)``, ``CenterCrop(S)``, ``ToTensor()``, ``Normalize(mean,
    std)``: training's evaluation transform. Tests use this to see what serving sees.
    """
    return to_normalised_batch([resize_for_model(image, image_size)], mean, std)[0]


def predict_fn(data: ImageBatch, model: ServingModel) -> Prediction:
    """Decode at the model's size, normalise, run the network once for the whole batch."""
    size = model.image_size
    resized = []
    for position, opened in enumerate(data.images):
        try:
            decoded = opened.decode(draft_size=(size, size) if JPEG_DRAFT else None)
        except image_decoding.ImageDecodeError as error:
            raise _decode_error_to_request_error(error, position, len(data.images)) from error
        resized.append(resize_for_model(decoded.image, size))
    batch = to_normalised_batch(resized, model.mean, model.std, model.device)
    with torch.inference_mode():
        logits = model.module(batch)
        probabilities = torch.softmax(logits.float(), dim=1)
        top_p, top_i = probabilities.topk(model.top_k, dim=1)
    return Prediction(
        indices=top_i.cpu().tolist(),
        probabilities=top_p.cpu().tolist(),
        classes=model.classes,
        version=model.version,
    )


def accepts_json(accept: str | None) -> bool:
    """True when an Accept header allows JSON (absent, ``*/*``, ``application/*`` or JSON)."""
    if not accept or not accept.strip():
        return True
    for media_range in accept.split(","):
        media_type = _media_type(media_range)
        if media_type in (JSON, "*/*", "application/*", ""):
            return True
    return False


def output_fn(prediction: Prediction, accept: str | None) -> tuple[str, str]:
    """Top-k breeds with confidences and the model version, as JSON (the only type offered)."""
    if not accepts_json(accept):
        raise RequestError(
            HTTPStatus.NOT_ACCEPTABLE,
            f"cannot answer with Accept {accept!r}; this endpoint responds with {JSON}",
        )
    predictions = []
    for indices, probabilities in zip(prediction.indices, prediction.probabilities, strict=True):
        top_k = [
            {"breed": prediction.classes[index], "confidence": round(float(p), 6)}
            for index, p in zip(indices, probabilities, strict=True)
        ]
        predictions.append(
            {"breed": top_k[0]["breed"], "confidence": top_k[0]["confidence"], "top_k": top_k}
        )
    body = {"model_version": prediction.version, "predictions": predictions}
    # Returning (body, content type) makes the toolkit send exactly this Content-Type.
    return json.dumps(body, separators=(",", ":")), JSON
