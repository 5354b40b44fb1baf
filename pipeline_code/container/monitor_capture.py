"""Turn captured invocations into monitor rows: image features plus prediction features.

A capture record holds the request as the endpoint saw it (raw image bytes, or JSON with one
base64 image or a batch of them) and the response JSON. Each image becomes one row: the shared
image features (``image_features``, the module the training baseline used), the predicted breed
and its confidence. Anything unreadable is counted, never raised: a monitor that crashes on one
bad line reports nothing about the thousands of good ones.

``analyse_object`` is what a worker process runs on one capture file: it streams the file, folds
every row into fixed-size accumulators (``drift_statistics``) and returns those, so what crosses
between processes is a file name one way and a few hundred kilobytes of counts the other, never
the images themselves.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import capture_format
import drift_statistics
import image_features
import monitor_io
from image_decoding import ImageDecodeError

PREDICTION_FEATURES = (
    image_features.FeatureSpec("confidence", "numeric", "Fractional", "top-1 probability"),
    image_features.FeatureSpec("predicted_label", "categorical", "String", "top-1 breed"),
)
ALL_FEATURES = image_features.FEATURES + PREDICTION_FEATURES
# How many corrupt-line messages a run keeps for its summary (the count is always exact).
MAX_ERROR_SAMPLES = 20


@dataclass
class ChunkResult:
    """What one chunk of lines contributed: values per feature and counts of what went wrong."""

    values: dict[str, list[Any]] = field(default_factory=lambda: {s.name: [] for s in ALL_FEATURES})
    records: int = 0
    images: int = 0
    corrupt: int = 0
    outside_window: int = 0
    decode_failures: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    def merge(self, other: ChunkResult) -> None:
        for name, values in other.values.items():
            self.values[name].extend(values)  # empty when the values were already folded
        self.records += other.records
        self.images += other.images
        self.corrupt += other.corrupt
        self.outside_window += other.outside_window
        self.decode_failures.update(other.decode_failures)
        self.errors.extend(other.errors[: MAX_ERROR_SAMPLES - len(self.errors)])


def request_images(payload: capture_format.CapturedPayload | None) -> list[bytes] | None:
    """The image bytes of a captured request, in request order; None if it cannot be read."""
    if payload is None:
        return None
    media_type = payload.observed_content_type.split(";", 1)[0].strip().lower()
    try:
        body = payload.raw_bytes()
    except (binascii.Error, ValueError):
        return None
    if media_type != "application/json":
        return [body]
    try:
        document = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if isinstance(document, dict) and "instances" in document:
        items = document["instances"]
    elif isinstance(document, dict) and "image" in document:
        items = [document]
    else:
        return None
    images = []
    for item in items if isinstance(items, list) else []:
        text = item.get("image") if isinstance(item, dict) else item
        if not isinstance(text, str):
            images.append(b"")
            continue
        if text.startswith("data:"):
            text = text.partition(",")[2]
        try:
            images.append(base64.b64decode(text, validate=False))
        except (binascii.Error, ValueError):
            images.append(b"")
    return images


def response_predictions(payload: capture_format.CapturedPayload | None) -> list[dict[str, Any]] | None:
    """The ``predictions`` list of a captured response, or None if it is not the serving shape."""
    if payload is None:
        return None
    try:
        document = payload.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        return None
    predictions = document.get("predictions") if isinstance(document, dict) else None
    return predictions if isinstance(predictions, list) else None


def record_rows(record: capture_format.CaptureRecord, result: ChunkResult) -> None:
    """Add one row per image of ``record`` to ``result``."""
    images = request_images(record.endpoint_input)
    predictions = response_predictions(record.endpoint_output)
    count = len(images) if images is not None else len(predictions or []) or 1
    if images is None:
        result.decode_failures["unreadable_request"] += 1
    if predictions is not None and len(predictions) != count:
        predictions = None  # a response that does not line up with its request cannot be trusted
    for index in range(count):
        features: dict[str, Any] = {}
        if images is not None:
            try:
                features = image_features.features_from_bytes(images[index])
            except ImageDecodeError as error:
                result.decode_failures[error.reason] += 1
        prediction = predictions[index] if predictions is not None else {}
        if not isinstance(prediction, dict):
            prediction = {}
        features["confidence"] = prediction.get("confidence")
        features["predicted_label"] = prediction.get("breed")
        for spec in ALL_FEATURES:
            result.values[spec.name].append(features.get(spec.name))
        result.images += 1


def analyse_lines(
    lines: list[tuple[str, int, bytes]], start: datetime | None, end: datetime | None
) -> ChunkResult:
    """Parse and measure a chunk of (source, line number, line) triples; runs in worker processes."""
    result = ChunkResult()
    for source, number, line in lines:
        try:
            record = capture_format.parse_record(line, source=source, line_number=number)
        except capture_format.CaptureFormatError as error:
            result.corrupt += 1
            if len(result.errors) < MAX_ERROR_SAMPLES:
                result.errors.append(str(error)[:300])
            continue
        if (start is not None and record.inference_time < start) or (
            end is not None and record.inference_time >= end
        ):
            result.outside_window += 1
            continue
        result.records += 1
        record_rows(record, result)
    return result


# Baseline statistics of this process (set once per worker by ``init_worker``).
_BASELINES: tuple[dict, dict] = ({}, {})


def init_worker(data_statistics: dict, prediction_statistics: dict) -> None:
    """Pool initializer: the baselines every ``analyse_object`` call compares against."""
    global _BASELINES
    _BASELINES = (data_statistics, prediction_statistics)


def build_accumulators(data_statistics: dict, prediction_statistics: dict) -> dict[str, Any]:
    """One empty accumulator per feature, each holding its baseline feature's bins."""
    baseline_features = {f["name"]: f for f in data_statistics.get("features", [])}
    baseline_features.update({f["name"]: f for f in prediction_statistics.get("features", [])})
    accumulators: dict[str, Any] = {}
    for spec in ALL_FEATURES:
        kind = (
            drift_statistics.NumericAccumulator
            if spec.kind == "numeric"
            else drift_statistics.CategoricalAccumulator
        )
        accumulators[spec.name] = kind(spec.name, spec.inferred_type, baseline_features.get(spec.name))
    return accumulators


def iter_line_chunks(location: str, size: int) -> Iterator[list[tuple[str, int, bytes]]]:
    """The non-empty lines of one object, ``size`` at a time (a stream: one chunk in memory)."""
    chunk: list[tuple[str, int, bytes]] = []
    for number, line in enumerate(monitor_io.iter_lines(location), start=1):
        if line.strip():
            chunk.append((location, number, line))
            if len(chunk) >= size:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def analyse_object(
    location: str, start: datetime | None, end: datetime | None, chunk_records: int
) -> tuple[dict[str, Any], ChunkResult]:
    """Accumulators and counts for one capture object, read as a stream."""
    accumulators = build_accumulators(*_BASELINES)
    totals = ChunkResult()
    for chunk in iter_line_chunks(location, chunk_records):
        result = analyse_lines(chunk, start, end)
        for name, column in result.values.items():
            accumulators[name].add_many(column)
        result.values = {}
        totals.merge(result)
    return accumulators, totals
