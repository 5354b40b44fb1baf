"""`dogbreeds traffic`: send real requests to an endpoint and record which image got which id.

    dogbreeds traffic --endpoint NAME|URL --images DIR [--env dev] [--count N] [--rate R]
                      [--drift brightness|blur|noise|crop] [--record FILE] [--seed S]

``--endpoint`` is a SageMaker endpoint name (boto3 ``invoke_endpoint`` with an ``InferenceId``)
or the URL of ``dogbreeds local serve`` (HTTP POST to ``/invocations`` with the
``X-Amzn-SageMaker-Inference-Id`` header). For a name, the region comes from cdk.json's ``--env``
block, like the other AWS commands (else the usual AWS_DEFAULT_REGION / profile). Images come from
an ImageFolder tree (the class folder is the true label, normalised like preprocess does) and are
sent round-robin. ``--drift`` alters every image first, so the data-quality monitor has something
to find. ``--record`` appends one JSON line per request (inference id, image, true label, drift,
status, reason, predicted breed) for `dogbreeds ground-truth`.

A request that fails is counted by its reason (connection refused or timeout with the URL, or the
HTTP status and the first line of the answer), each new reason is printed once on stderr, and the
summary counts them. Setup mistakes (no credentials or region, rejected or expired credentials,
access denied) end the run with the one line of `dogbreeds.aws_errors` instead.
"""

from __future__ import annotations

import io
import json
import socket
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from dogbreeds.environment import resolve_environment
from pipeline_code.container.dogbreeds_jobs.data import class_names, image_decoding

DRIFTS = ("brightness", "blur", "noise", "crop")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "MPO": "image/jpeg"}
# Strength of each drift: clearly visible, like a camera change or a broken lens, not an attack.
BRIGHTNESS_FACTOR = 1.8
BLUR_RADIUS = 2.5
NOISE_SIGMA = 40.0
CROP_FRACTION = 0.5
HTTP_TIMEOUT_S = 30
REASON_MAX_CHARS = 200


def apply_drift(data: bytes, kind: str | None, rng: np.random.Generator) -> tuple[bytes, str]:
    """The image altered by ``kind`` and re-encoded as JPEG; unchanged (with its type) for None."""
    if kind is None:
        opened = image_decoding.open_image(data)
        return data, CONTENT_TYPES.get(opened.format, "application/x-image")
    if kind not in DRIFTS:
        raise ValueError(f"drift must be one of {', '.join(DRIFTS)}, got {kind!r}")
    image = image_decoding.decode_image(data).image
    if kind == "brightness":
        image = ImageEnhance.Brightness(image).enhance(BRIGHTNESS_FACTOR)
    elif kind == "blur":
        image = image.filter(ImageFilter.GaussianBlur(BLUR_RADIUS))
    elif kind == "noise":
        pixels = np.asarray(image, dtype=np.float32) + rng.normal(
            0, NOISE_SIGMA, (image.height, image.width, 3)
        )
        image = Image.fromarray(pixels.clip(0, 255).astype(np.uint8), "RGB")
    else:
        width, height = image.size
        w, h = max(1, round(width * CROP_FRACTION)), max(1, round(height * CROP_FRACTION))
        left, top = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
        image = image.crop((left, top, left + w, top + h))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue(), "image/jpeg"


def find_images(images_dir: Path) -> list[tuple[Path, str | None]]:
    """(file, true label), classes interleaved: class folders give labels, loose files have none."""
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise ValueError(f"--images {images_dir} is not a folder")
    found = []
    for path in sorted(images_dir.rglob("*")):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            parts = path.relative_to(images_dir).parts
            label = class_names.normalise_class_name(parts[0]) if len(parts) > 1 else None
            found.append((path, label))
    if not found:
        raise ValueError(f"--images {images_dir} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    # Interleave the classes (first image of each, then the second, ...) so that a short run
    # already sends every breed, in the proportions the folder has.
    rank: dict[str | None, int] = {}
    keyed = []
    for path, label in found:
        rank[label] = rank.get(label, -1) + 1
        keyed.append((rank[label], path, label))
    return [(path, label) for _, path, label in sorted(keyed, key=lambda item: (item[0], str(item[1])))]


# (status, answer): the decoded JSON for 200, else the reason as one line; status 0 means no answer.
Sender = Callable[[bytes, str, str], tuple[int, Any]]


def first_line(text: str | bytes) -> str:
    """The first non-blank line of an answer body, shortened to one readable reason."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    line = next((line.strip() for line in text.splitlines() if line.strip()), "(empty body)")
    return line if len(line) <= REASON_MAX_CHARS else line[: REASON_MAX_CHARS - 3] + "..."


def url_sender(url: str) -> Sender:
    """POST to a local server's /invocations (``url`` may or may not end in /invocations)."""
    target = url.rstrip("/")
    if not target.endswith("/invocations"):
        target += "/invocations"

    def send(body: bytes, content_type: str, inference_id: str) -> tuple[int, Any]:
        request = urllib.request.Request(
            target,
            data=body,
            method="POST",
            headers={
                "Content-Type": content_type,
                "Accept": "application/json",
                "X-Amzn-SageMaker-Inference-Id": inference_id,
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, f"HTTP {error.code}: {first_line(error.read())}"
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            # Status 0: the request never got an answer (server down, refused, timed out).
            return 0, _no_answer(error, target)

    return send


def _no_answer(error: BaseException, target: str) -> str:
    cause = error.reason if isinstance(error, urllib.error.URLError) else error
    if isinstance(cause, ConnectionRefusedError):
        return f"connection refused: {target}"
    if isinstance(cause, (TimeoutError, socket.timeout)):
        return f"timeout after {HTTP_TIMEOUT_S}s: {target}"
    return f"no response from {target}: {cause}"


def runtime_client(region: str | None) -> Any:
    """The sagemaker-runtime client for ``region`` (None: boto3's own resolution)."""
    import boto3

    return boto3.client("sagemaker-runtime", region_name=region)


def endpoint_sender(endpoint_name: str, runtime: Any = None) -> Sender:
    """boto3 ``invoke_endpoint`` on a SageMaker endpoint, with the inference id for ground truth.

    A per-request failure (model error, throttled after retries, missing endpoint, timeout) is a
    reason; a setup mistake (credentials, region, access) is raised for aws_errors to report.
    """
    import botocore.exceptions

    from dogbreeds import aws_errors

    setup_codes = aws_errors.ACCESS_DENIED | aws_errors.EXPIRED | aws_errors.BAD_CREDENTIALS
    if runtime is None:
        runtime = runtime_client(None)

    def send(body: bytes, content_type: str, inference_id: str) -> tuple[int, Any]:
        try:
            response = runtime.invoke_endpoint(
                EndpointName=endpoint_name,
                Body=body,
                ContentType=content_type,
                Accept="application/json",
                InferenceId=inference_id,
            )
        except runtime.exceptions.ModelError as error:
            status = int(error.response.get("OriginalStatusCode", 500))
            message = error.response.get("OriginalMessage") or error.response["Error"].get("Message", "")
            return status, f"HTTP {status}: model error: {first_line(str(message))}"
        except botocore.exceptions.ClientError as error:  # throttling, validation, missing endpoint
            info = error.response.get("Error", {})
            if info.get("Code") in setup_codes:
                raise
            status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            message = first_line(str(info.get("Message") or ""))
            return status, f"HTTP {status}: {info.get('Code', 'error')}: {message}"
        except (botocore.exceptions.ConnectTimeoutError, botocore.exceptions.ReadTimeoutError) as error:
            return 0, f"timeout: {error.kwargs.get('endpoint_url', endpoint_name)}"
        # Any other BotoCoreError (no credentials or region, AWS unreachable) ends the run.
        return 200, json.loads(response["Body"].read())

    return send


def send_traffic(
    send: Sender,
    images: list[tuple[Path, str | None]],
    *,
    count: int,
    rate: float,
    drift: str | None,
    record: Path | None,
    seed: int = 0,
) -> dict[str, Any]:
    """Send ``count`` requests round-robin over ``images``, at most ``rate`` per second (0: no limit)."""
    if count < 1:
        raise ValueError(f"--count must be at least 1, got {count}")
    if rate < 0:
        raise ValueError(f"--rate must be 0 (no limit) or positive, got {rate}")
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    statuses: dict[str, int] = {}
    reasons: dict[str, int] = {}
    started = time.monotonic()
    handle = record.open("a", encoding="utf-8") if record else None
    # disable=None: a bar only when stderr is a terminal, so logs and tests get none.
    bar = tqdm(total=count, unit="req", file=sys.stderr, disable=None, desc="traffic")
    try:
        for number in range(count):
            if rate:
                delay = started + number / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            path, label = images[number % len(images)]
            body, content_type = apply_drift(path.read_bytes(), drift, rng)
            inference_id = str(uuid.uuid4())
            status, answer = send(body, content_type, inference_id)
            statuses[str(status)] = statuses.get(str(status), 0) + 1
            predicted = reason = None
            if status == 200 and isinstance(answer, dict) and answer.get("predictions"):
                predicted = answer["predictions"][0].get("breed")
            elif status != 200:
                reason = str(answer)
                if reason not in reasons:
                    bar.write(f"dogbreeds traffic: request {number + 1} failed: {reason}", file=sys.stderr)
                reasons[reason] = reasons.get(reason, 0) + 1
            bar.update()
            if handle:
                entry = {
                    "inference_id": inference_id,
                    "image": str(path),
                    "true_label": label,
                    "drift": drift,
                    "status": status,
                    "reason": reason,
                    "predicted_breed": predicted,
                }
                handle.write(json.dumps(entry) + "\n")
    finally:
        bar.close()
        if handle:
            handle.close()
    elapsed = time.monotonic() - started
    return {
        "sent": count,
        "statuses": statuses,
        "reasons": reasons,
        "seconds": round(elapsed, 3),
        "drift": drift,
    }


def endpoint_url(endpoint: str) -> str | None:
    """The URL ``--endpoint`` names, or None for a SageMaker endpoint name.

    Endpoint names are letters, digits and hyphens only, so anything with ``:``, ``.`` or ``/`` is
    an address; ``localhost:8080`` means ``http://localhost:8080``.
    """
    if endpoint.startswith(("http://", "https://")):
        return endpoint
    if any(character in endpoint for character in ":./"):
        return f"http://{endpoint}"
    return None


def sender_for(endpoint: str, env_name: str, cdk_json: Path | None = None) -> Sender:
    """The sender ``--endpoint`` names: HTTP for a URL, else ``invoke_endpoint`` in the region that
    cdk.json pins for ``env_name`` (boto3's own resolution where it pins none)."""
    url = endpoint_url(endpoint)
    if url:
        return url_sender(url)
    _, settings = resolve_environment(env_name, cdk_json)
    return endpoint_sender(endpoint, runtime_client(settings.region))
