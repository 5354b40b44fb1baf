"""Turn captured invocations into monitor rows: image features plus prediction features.

A capture record holds the request as the endpoint saw it (raw image bytes, or JSON with one
base64 image or a batch of them) and the response JSON. Each image becomes one row: the shared
image features (``image_features``, the module the training baseline used), the predicted breed
and its confidence. Anything unreadable is counted, never raised: a monitor that crashes on one
bad line reports nothing about the thousands of good ones.

``analyse_object`` is what a worker process runs on one capture file: it streams the file and
returns compact per-record feature rows (``FeatureRows``: about 160 bytes per image, each record
tagged with an 8-byte digest of its join id) and counts, never the images themselves. The main
process (``WindowFold``) drops every record whose id it has already seen in the window, wherever
that first occurrence was, and folds the rest into fixed-size accumulators (``drift_statistics``).
Deduplication costs the main process 8 bytes per distinct record of the window (a sorted array
of digests, briefly twice that while it is rebuilt, plus a bounded set of recent ones): a window
of a million records needs about 8 MB; everything else stays flat however long the window.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from array import array
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from ..data import image_features
from ..data.image_decoding import ImageDecodeError
from . import capture_format, drift_statistics, monitor_io

PREDICTION_FEATURES = (
    image_features.FeatureSpec("confidence", "numeric", "Fractional", "top-1 probability"),
    image_features.FeatureSpec("predicted_label", "categorical", "String", "top-1 breed"),
)
ALL_FEATURES = image_features.FEATURES + PREDICTION_FEATURES
NUMERIC_FEATURES = tuple(s.name for s in ALL_FEATURES if s.kind == "numeric")
CATEGORICAL_FEATURES = tuple(s.name for s in ALL_FEATURES if s.kind != "numeric")
# How many messages of each kind a run keeps for its summary (the counts are always exact).
MAX_ERROR_SAMPLES = 20
# A record's identity for deduplication: this many bytes of blake2b over its join id. Two distinct
# ids collide with probability about n^2 / 2^65: one in 37,000 for a window of 10 million records.
ID_DIGEST_BYTES = 8


@dataclass
class ChunkResult:
    """What a chunk of lines (or a window) contributed: counts, and examples of what went wrong.

    ``images`` and ``decode_failures`` are filled when rows are folded (``WindowFold``), so a
    duplicate record's images are not counted twice."""

    records: int = 0
    images: int = 0
    corrupt: int = 0
    outside_window: int = 0
    decode_failures: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    # Records whose join id was already seen in the window: counted once, not analysed again.
    duplicates: int = 0
    duplicate_examples: list[str] = field(default_factory=list)
    # Records of an eventVersion capture_format does not know, per version: analysed all the same.
    unknown_versions: Counter = field(default_factory=Counter)
    unknown_version_examples: list[str] = field(default_factory=list)
    # Lines longer than monitor_io.MAX_LINE_BYTES: skipped without being read into memory.
    oversized: int = 0
    oversized_examples: list[str] = field(default_factory=list)

    def merge(self, other: ChunkResult) -> None:
        self.records += other.records
        self.images += other.images
        self.corrupt += other.corrupt
        self.outside_window += other.outside_window
        self.decode_failures.update(other.decode_failures)
        self.duplicates += other.duplicates
        self.unknown_versions.update(other.unknown_versions)
        self.oversized += other.oversized
        for mine, theirs in (
            (self.errors, other.errors),
            (self.duplicate_examples, other.duplicate_examples),
            (self.unknown_version_examples, other.unknown_version_examples),
            (self.oversized_examples, other.oversized_examples),
        ):
            keep_example(mine, *theirs)


def keep_example(examples: list[str], *messages: str) -> None:
    """Append messages (each cut to 300 characters) while fewer than MAX_ERROR_SAMPLES are kept."""
    for message in messages[: max(0, MAX_ERROR_SAMPLES - len(examples))]:
        examples.append(message[:300])


def id_digest(join_id: str) -> int:
    """The record's id for deduplication: ID_DIGEST_BYTES of blake2b, as an unsigned integer."""
    digest = hashlib.blake2b(join_id.encode("utf-8", "surrogatepass"), digest_size=ID_DIGEST_BYTES)
    return int.from_bytes(digest.digest(), "little")


class SeenIds:
    """The id digests seen so far in a window: 8 bytes per id once settled.

    Settled ids live in one sorted uint64 array (looked up with a binary search); new ones go to a
    small set first and are merged into the array when the set reaches a sixteenth of it (at least
    ``MIN_RECENT``), so merging costs O(n) a logarithmic number of times and the set never holds
    more than a few bytes per settled id.
    """

    MIN_RECENT = 8192

    def __init__(self) -> None:
        self._settled = np.zeros(0, dtype=np.uint64)
        self._recent: set[int] = set()

    def __len__(self) -> int:
        return len(self._settled) + len(self._recent)

    def first_seen(self, digests: np.ndarray) -> np.ndarray:
        """For each digest in order: True the first time it is seen (in this call or before)."""
        digests = np.asarray(digests, dtype=np.uint64)
        fresh = np.ones(len(digests), dtype=bool)
        if len(self._settled) and len(digests):
            at = np.minimum(np.searchsorted(self._settled, digests), len(self._settled) - 1)
            fresh = self._settled[at] != digests
        values = digests.tolist()
        for index in np.flatnonzero(fresh).tolist():
            if values[index] in self._recent:
                fresh[index] = False
            else:
                self._recent.add(values[index])
        if len(self._recent) >= max(self.MIN_RECENT, len(self._settled) // 16):
            recent = np.fromiter(self._recent, dtype=np.uint64, count=len(self._recent))
            recent.sort()
            merged = np.concatenate((self._settled, recent))
            merged.sort(kind="stable")  # two sorted runs: a linear merge
            self._settled, self._recent = merged, set()
        return fresh


class FeatureRows:
    """The feature rows of one object's in-window records, compact enough to cross processes.

    Per record: its id digest, line number and number of rows (8 + 4 + 4 bytes). Per image row:
    each numeric feature as a float64 plus a state byte (0 value, 1 missing, 2 not a number), each
    categorical feature as an int32 code into this object's own value list (-1 missing, -2 not a
    string), and a decode-failure code (-1 none): about 160 bytes, against the kilobytes of image
    each row was measured from.
    """

    MISSING, INVALID = 1, 2

    def __init__(self, location: str = "") -> None:
        self.location = location
        self.ids = array("Q")
        self.lines = array("I")
        self.counts = array("I")
        self.numeric = {name: array("d") for name in NUMERIC_FEATURES}
        self.numeric_state = {name: bytearray() for name in NUMERIC_FEATURES}
        self.codes = {name: array("i") for name in CATEGORICAL_FEATURES}
        self.vocabulary: dict[str, list[str]] = {name: [] for name in CATEGORICAL_FEATURES}
        self._index: dict[str, dict[str, int]] = {name: {} for name in CATEGORICAL_FEATURES}
        self.failures = array("b")
        self.failure_reasons: list[str] = []

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_index"] = None  # rebuilt only by a writer; the reader needs the lists
        return state

    def start_record(self, join_id: str, line_number: int) -> None:
        self.ids.append(id_digest(join_id))
        self.lines.append(min(line_number, 2**32 - 1))
        self.counts.append(0)

    def add_row(self, features: dict[str, Any], failure: str | None) -> None:
        self.counts[-1] += 1
        for name in NUMERIC_FEATURES:
            value = features.get(name)
            if value is None:
                self.numeric[name].append(0.0)
                self.numeric_state[name].append(self.MISSING)
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
                self.numeric[name].append(0.0)
                self.numeric_state[name].append(self.INVALID)
            else:
                self.numeric[name].append(float(value))
                self.numeric_state[name].append(0)
        for name in CATEGORICAL_FEATURES:
            value = features.get(name)
            if value is None or value == "":
                self.codes[name].append(-1)
            elif not isinstance(value, str):
                self.codes[name].append(-2)
            else:
                index = self._index[name]
                if value not in index:
                    index[value] = len(self.vocabulary[name])
                    self.vocabulary[name].append(value)
                self.codes[name].append(index[value])
        if failure is None:
            self.failures.append(-1)
        else:
            if failure not in self.failure_reasons:
                self.failure_reasons.append(failure)
            self.failures.append(self.failure_reasons.index(failure))

    def fold(self, accumulators: dict[str, Any], keep_records: np.ndarray, totals: ChunkResult) -> None:
        """Fold the rows of the records marked in ``keep_records`` into the accumulators."""
        counts = np.frombuffer(self.counts, dtype=np.uint32) if len(self.counts) else np.zeros(0, int)
        keep = np.repeat(keep_records, counts)
        totals.images += int(keep.sum())
        for name in NUMERIC_FEATURES:
            accumulator = accumulators[name]
            state = np.frombuffer(self.numeric_state[name], dtype=np.uint8)[keep]
            values = np.frombuffer(self.numeric[name], dtype=np.float64)[keep]
            accumulator.missing += int((state == self.MISSING).sum())
            accumulator.type_errors += int((state == self.INVALID).sum())
            accumulator.add_many(values[state == 0].tolist())
        for name in CATEGORICAL_FEATURES:
            accumulator = accumulators[name]
            codes = np.frombuffer(self.codes[name], dtype=np.int32)[keep]
            accumulator.missing += int((codes == -1).sum())
            accumulator.type_errors += int((codes == -2).sum())
            words = self.vocabulary[name]
            accumulator.add_many([words[code] for code in codes[codes >= 0].tolist()])
        failures = np.frombuffer(self.failures, dtype=np.int8)[keep]
        for code in failures[failures >= 0].tolist():
            totals.decode_failures[self.failure_reasons[code]] += 1


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


def record_rows(record: capture_format.CaptureRecord, rows: FeatureRows, line_number: int = 0) -> None:
    """Add ``record`` (tagged with its join id) and one row per image of it to ``rows``.

    A request that cannot be read still gets a row (its prediction features, images missing) whose
    failure is "unreadable_request", so the record counts once in completeness and in the reasons.
    """
    images = request_images(record.endpoint_input)
    predictions = response_predictions(record.endpoint_output)
    count = len(images) if images is not None else len(predictions or []) or 1
    if predictions is not None and len(predictions) != count:
        predictions = None  # a response that does not line up with its request cannot be trusted
    rows.start_record(record.join_id, line_number)
    for index in range(count):
        features: dict[str, Any] = {}
        failure = "unreadable_request" if images is None and index == 0 else None
        if images is not None:
            try:
                features = image_features.features_from_bytes(images[index])
            except ImageDecodeError as error:
                failure = error.reason
        prediction = predictions[index] if predictions is not None else {}
        if not isinstance(prediction, dict):
            prediction = {}
        features["confidence"] = prediction.get("confidence")
        features["predicted_label"] = prediction.get("breed")
        rows.add_row(features, failure)


def read_record(
    source: str, number: int, line: bytes | monitor_io.OversizedLine, result: ChunkResult
) -> capture_format.CaptureRecord | None:
    """Parse one line, or count why it cannot be used (corrupt, oversized) and return None."""
    if isinstance(line, monitor_io.OversizedLine):
        result.oversized += 1
        keep_example(result.oversized_examples, line.describe(source, number))
        return None
    try:
        record = capture_format.parse_record(line, source=source, line_number=number)
    except capture_format.CaptureFormatError as error:
        result.corrupt += 1
        keep_example(result.errors, str(error))
        return None
    return record


def note_version(
    record: capture_format.CaptureRecord, source: str, number: int, result: ChunkResult
) -> None:
    """Count an in-window record of an eventVersion capture_format does not know, per version.

    The record is still analysed: the parser has checked every field the monitors read, and the
    version is the only thing unknown, so dropping it would lose real traffic (all of it, the day
    a new version ships) for a risk the count already makes visible.
    """
    if not record.known_version:
        result.unknown_versions[record.event_version] += 1
        keep_example(
            result.unknown_version_examples,
            f"{source}:{number}: eventVersion {record.event_version!r} is not one of "
            f"{sorted(capture_format.KNOWN_EVENT_VERSIONS)}; analysed with the known fields",
        )


def analyse_lines(
    lines: list[tuple[str, int, bytes | monitor_io.OversizedLine]],
    start: datetime | None,
    end: datetime | None,
    rows: FeatureRows | None = None,
) -> tuple[FeatureRows, ChunkResult]:
    """Parse and measure a chunk of (source, line number, line) triples; runs in worker processes."""
    rows = rows if rows is not None else FeatureRows(lines[0][0] if lines else "")
    result = ChunkResult()
    for source, number, line in lines:
        record = read_record(source, number, line, result)
        if record is None:
            continue
        if (start is not None and record.inference_time < start) or (
            end is not None and record.inference_time >= end
        ):
            result.outside_window += 1
            continue
        note_version(record, source, number, result)
        result.records += 1
        record_rows(record, rows, number)
    return rows, result


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


def iter_line_chunks(
    location: str, size: int
) -> Iterator[list[tuple[str, int, bytes | monitor_io.OversizedLine]]]:
    """The non-empty lines of one object, ``size`` at a time (a stream: one chunk in memory).

    A chunk also ends once its lines reach ``monitor_io.MAX_LINE_BYTES`` together, so a chunk of
    large lines holds at most about twice the line cap, however many lines ``size`` allows.
    """
    chunk: list[tuple[str, int, bytes | monitor_io.OversizedLine]] = []
    held = 0
    for number, line in enumerate(monitor_io.iter_lines(location), start=1):
        if isinstance(line, monitor_io.OversizedLine) or line.strip():
            chunk.append((location, number, line))
            held += len(line) if isinstance(line, bytes) else 0
            if len(chunk) >= size or held >= monitor_io.MAX_LINE_BYTES:
                yield chunk
                chunk, held = [], 0
    if chunk:
        yield chunk


def analyse_object(
    location: str, start: datetime | None, end: datetime | None, chunk_records: int
) -> tuple[FeatureRows, ChunkResult]:
    """Feature rows and counts for one capture object, read as a stream (runs in a worker)."""
    rows = FeatureRows(location)
    totals = ChunkResult()
    for chunk in iter_line_chunks(location, chunk_records):
        _, result = analyse_lines(chunk, start, end, rows)
        totals.merge(result)
    return rows, totals


class WindowFold:
    """The window's accumulators and counts, folded object by object in the main process.

    Objects must be added in the order they were listed, so "first occurrence" means the same
    thing with one worker or many: the first in time order of files, then of lines.
    """

    def __init__(self, data_statistics: dict, prediction_statistics: dict) -> None:
        self.accumulators = build_accumulators(data_statistics, prediction_statistics)
        self.totals = ChunkResult()
        self.seen = SeenIds()

    def add(self, rows: FeatureRows, counts: ChunkResult) -> None:
        digests = np.frombuffer(rows.ids, dtype=np.uint64) if len(rows.ids) else np.zeros(0, np.uint64)
        first = self.seen.first_seen(digests)
        duplicates = np.flatnonzero(~first)
        counts.records -= len(duplicates)
        counts.duplicates += len(duplicates)
        keep_example(
            counts.duplicate_examples,
            *(
                f"{rows.location}:{rows.lines[index]}: inferenceId (else eventId) already seen "
                "in this window; counted once"
                for index in duplicates[:MAX_ERROR_SAMPLES].tolist()
            ),
        )
        rows.fold(self.accumulators, first, self.totals)
        self.totals.merge(counts)
