"""SageMaker data-capture records: write them the way an endpoint does, read them back as a stream.

One record per invocation, one JSON object per line::

    {"captureData": {
        "endpointInput":  {"observedContentType": "image/jpeg", "mode": "INPUT",
                           "data": "<base64>", "encoding": "BASE64"},
        "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                           "data": "{...}", "encoding": "JSON"}},
     "eventMetadata": {"eventId": "<uuid>", "inferenceId": "<caller's id, optional>",
                       "inferenceTime": "2026-11-27T10:15:02.123Z"},
     "eventVersion": "0"}

Files live under ``<prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/<MM-SS-mmm-uuid>.jsonl`` (UTC hour
of the inference). A body whose content type the capture config lists as JSON or CSV is stored as
text with encoding "JSON"/"CSV"; anything else (images) is base64 with encoding "BASE64", which is
also SageMaker's behaviour when no content-type headers are configured.

Local serving writes these files and the monitors read both local and S3-synced capture through
``iter_capture_records``, so the two cannot drift apart.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

EVENT_VERSION = "0"
# The eventVersion values whose layout this module knows: SageMaker's documented records carry
# "0". A record with another value (or none) is still parsed when it has the fields read here,
# and ``CaptureRecord.known_version`` lets the monitors count it rather than take it for "0".
KNOWN_EVENT_VERSIONS = frozenset({EVENT_VERSION})
MISSING_EVENT_VERSION = "<missing>"
DEFAULT_JSON_CONTENT_TYPES = ("application/json",)
DEFAULT_CSV_CONTENT_TYPES = ("text/csv",)
ENCODINGS = ("JSON", "CSV", "BASE64")
MODES = ("INPUT", "OUTPUT")


class CaptureFormatError(ValueError):
    """A capture line is not a SageMaker capture record; the message names the file and line."""


@dataclass(frozen=True)
class CapturedPayload:
    """One side of an invocation as captured (``endpointInput`` or ``endpointOutput``)."""

    observed_content_type: str
    mode: str
    data: str
    encoding: str

    def raw_bytes(self) -> bytes:
        """The body exactly as it crossed the wire."""
        if self.encoding == "BASE64":
            return base64.b64decode(self.data)
        return self.data.encode("utf-8")

    def json(self) -> Any:
        """The body parsed as JSON (for outputs, and JSON inputs)."""
        return json.loads(self.raw_bytes())

    def to_dict(self) -> dict[str, str]:
        return {
            "observedContentType": self.observed_content_type,
            "mode": self.mode,
            "data": self.data,
            "encoding": self.encoding,
        }


@dataclass(frozen=True)
class CaptureRecord:
    """One captured invocation."""

    event_id: str
    inference_time: datetime
    endpoint_input: CapturedPayload | None
    endpoint_output: CapturedPayload | None
    inference_id: str | None = None
    event_version: str = EVENT_VERSION

    @property
    def known_version(self) -> bool:
        """Whether ``event_version`` is one whose layout this module knows."""
        return self.event_version in KNOWN_EVENT_VERSIONS

    @property
    def join_id(self) -> str:
        """The id ground truth is joined on: inferenceId when the caller gave one, else eventId."""
        return self.inference_id or self.event_id

    def to_dict(self) -> dict[str, Any]:
        capture_data: dict[str, Any] = {}
        if self.endpoint_input is not None:
            capture_data["endpointInput"] = self.endpoint_input.to_dict()
        if self.endpoint_output is not None:
            capture_data["endpointOutput"] = self.endpoint_output.to_dict()
        metadata = {"eventId": self.event_id}
        if self.inference_id:
            metadata["inferenceId"] = self.inference_id
        metadata["inferenceTime"] = format_inference_time(self.inference_time)
        document: dict[str, Any] = {"captureData": capture_data, "eventMetadata": metadata}
        if self.event_version != MISSING_EVENT_VERSION:
            document["eventVersion"] = self.event_version
        return document

    def to_json_line(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":")) + "\n"


def format_inference_time(moment: datetime) -> str:
    """UTC ISO 8601 with milliseconds and a Z, as SageMaker writes it."""
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_inference_time(text: str) -> datetime:
    """Parse SageMaker's inferenceTime (with or without fractional seconds) to an aware UTC time."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def encode_payload(
    body: bytes,
    content_type: str | None,
    mode: str,
    *,
    json_content_types: Iterable[str] = DEFAULT_JSON_CONTENT_TYPES,
    csv_content_types: Iterable[str] = DEFAULT_CSV_CONTENT_TYPES,
) -> CapturedPayload:
    """Capture one body: text for configured JSON/CSV content types, base64 for everything else."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    observed = content_type or "application/octet-stream"
    media_type = observed.split(";", 1)[0].strip().lower()
    for encoding, listed in (("JSON", json_content_types), ("CSV", csv_content_types)):
        if media_type in {t.lower() for t in listed}:
            try:
                return CapturedPayload(observed, mode, body.decode("utf-8"), encoding)
            except UnicodeDecodeError:
                break  # not text after all: fall back to base64 so nothing is lost
    return CapturedPayload(observed, mode, base64.b64encode(body).decode("ascii"), "BASE64")


def build_record(
    *,
    request_body: bytes,
    request_content_type: str | None,
    response_body: bytes,
    response_content_type: str | None,
    inference_id: str | None = None,
    event_id: str | None = None,
    inference_time: datetime | None = None,
    capture_input: bool = True,
    capture_output: bool = True,
    json_content_types: Iterable[str] = DEFAULT_JSON_CONTENT_TYPES,
    csv_content_types: Iterable[str] = DEFAULT_CSV_CONTENT_TYPES,
) -> CaptureRecord:
    """A record for one invocation (eventId generated unless given, time defaults to now)."""
    kinds = {
        "json_content_types": tuple(json_content_types),
        "csv_content_types": tuple(csv_content_types),
    }
    return CaptureRecord(
        event_id=event_id or str(uuid.uuid4()),
        inference_id=inference_id or None,
        inference_time=_to_millisecond(inference_time or datetime.now(UTC)),
        endpoint_input=(
            encode_payload(request_body, request_content_type, "INPUT", **kinds)
            if capture_input
            else None
        ),
        endpoint_output=(
            encode_payload(response_body, response_content_type, "OUTPUT", **kinds)
            if capture_output
            else None
        ),
    )


def _to_millisecond(moment: datetime) -> datetime:
    """Capture stores milliseconds; rounding here keeps a record equal to its round trip."""
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def hour_prefix(endpoint_name: str, variant_name: str, moment: datetime) -> str:
    """``<endpoint>/<variant>/yyyy/mm/dd/hh`` for the UTC hour of ``moment``."""
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return f"{endpoint_name}/{variant_name}/{moment:%Y/%m/%d/%H}"


def capture_file_name(moment: datetime) -> str:
    """``MM-SS-mmm-<uuid>.jsonl``: time of the first record in the hour, as SageMaker names it."""
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return f"{moment:%M-%S}-{moment.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"


class CaptureWriter:
    """Appends records to ``<root>/<endpoint>/<variant>/yyyy/mm/dd/hh/*.jsonl``, thread-safe.

    A new file starts when the hour changes or the current one reaches ``max_records_per_file``.
    Each record goes to the file unbuffered, as one line; when a write fails part-way (a full
    disk), the file is cut back to its last whole line before the error is raised, so a record
    that failed leaves nothing behind and the next one starts on a line of its own. If the file
    cannot be cut back, the next record starts a new file instead.
    """

    def __init__(
        self,
        root: Path,
        endpoint_name: str,
        variant_name: str = "AllTraffic",
        *,
        max_records_per_file: int = 1000,
    ) -> None:
        for label, value in (("endpoint name", endpoint_name), ("variant name", variant_name)):
            if not value or "/" in value or value in (".", ".."):
                raise ValueError(f"{label} {value!r} must be a non-empty name without '/'")
        if max_records_per_file < 1:
            raise ValueError("max_records_per_file must be at least 1")
        self.root = Path(root)
        self.endpoint_name = endpoint_name
        self.variant_name = variant_name
        self.max_records_per_file = max_records_per_file
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._size = 0  # bytes of whole lines in the current file
        self._hour: str | None = None
        self._count = 0
        self.paths: list[Path] = []

    def write(self, record: CaptureRecord) -> Path:
        """Append ``record`` to the file for its hour; return that file's path."""
        line = record.to_json_line()
        hour = hour_prefix(self.endpoint_name, self.variant_name, record.inference_time)
        with self._lock:
            if (
                self._fd is None
                or hour != self._hour
                or self._count >= self.max_records_per_file
            ):
                self._close_current()
                folder = self.root / hour
                folder.mkdir(parents=True, exist_ok=True)
                path = folder / capture_file_name(record.inference_time)
                self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                self._size = os.fstat(self._fd).st_size
                self._hour, self._count = hour, 0
                self.paths.append(path)
            self._append(line.encode("utf-8"))
            self._count += 1
            return self.paths[-1]

    def _append(self, data: bytes) -> None:
        """Write ``data`` whole, or cut the file back to where it was and raise."""
        assert self._fd is not None
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except BaseException:
            try:
                os.ftruncate(self._fd, self._size)
            except OSError:
                # The partial line stays; no record may follow it in this file.
                self._close_current()
            raise
        self._size += len(data)

    def _close_current(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def close(self) -> None:
        with self._lock:
            self._close_current()

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def parse_record(
    line: str | bytes, *, source: str = "<stream>", line_number: int = 0
) -> CaptureRecord:
    """One JSONL line -> ``CaptureRecord``; ``CaptureFormatError`` says what is wrong and where."""
    where = f"{source}:{line_number}" if line_number else source
    try:
        document = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CaptureFormatError(f"{where}: not a JSON line: {error}") from error
    try:
        capture = document["captureData"]
        metadata = document["eventMetadata"]
        payloads = {}
        for key, mode in (("endpointInput", "INPUT"), ("endpointOutput", "OUTPUT")):
            part = capture.get(key)
            if part is None:
                payloads[key] = None
                continue
            encoding = part["encoding"]
            if encoding not in ENCODINGS:
                raise CaptureFormatError(
                    f"{where}: {key}.encoding is {encoding!r}; expected one of {ENCODINGS}"
                )
            payloads[key] = CapturedPayload(
                observed_content_type=part["observedContentType"],
                mode=part.get("mode", mode),
                data=part["data"],
                encoding=encoding,
            )
        if payloads["endpointInput"] is None and payloads["endpointOutput"] is None:
            raise CaptureFormatError(f"{where}: captureData has neither endpointInput nor Output")
        return CaptureRecord(
            event_id=metadata["eventId"],
            inference_id=metadata.get("inferenceId") or None,
            inference_time=parse_inference_time(metadata["inferenceTime"]),
            endpoint_input=payloads["endpointInput"],
            endpoint_output=payloads["endpointOutput"],
            event_version=(
                str(document["eventVersion"]) if "eventVersion" in document else MISSING_EVENT_VERSION
            ),
        )
    except CaptureFormatError:
        raise
    except (KeyError, TypeError, AttributeError, ValueError) as error:
        raise CaptureFormatError(
            f"{where}: not a SageMaker capture record (missing or bad {error})"
        ) from error


def iter_records_from_lines(
    lines: Iterable[str | bytes], *, source: str = "<stream>"
) -> Iterator[CaptureRecord]:
    """Parse an iterable of JSONL lines (an open file, ``StreamingBody.iter_lines()``) lazily."""
    for number, line in enumerate(lines, start=1):
        if line.strip():
            yield parse_record(line, source=source, line_number=number)


def _hour_of(relative_parts: tuple[str, ...]) -> datetime | None:
    """The hour encoded by ``yyyy/mm/dd/hh`` folders (the last four folders), or None."""
    if len(relative_parts) < 5:
        return None
    try:
        year, month, day, hour = (int(p) for p in relative_parts[-5:-1])
        return datetime(year, month, day, hour, tzinfo=UTC)
    except ValueError:
        return None


def iter_capture_files(
    root: Path, *, start: datetime | None = None, end: datetime | None = None
) -> Iterator[Path]:
    """Capture files under ``root`` in time order, keeping hours that overlap [start, end)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"capture folder {root} does not exist")
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if not name.endswith(".jsonl"):
                continue
            path = Path(dirpath) / name
            hour = _hour_of(path.relative_to(root).parts)
            if hour is not None:
                if start is not None and hour + timedelta(hours=1) <= start:
                    continue
                if end is not None and hour >= end:
                    continue
            yield path


def iter_capture_records(
    root: Path,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    skip_invalid: bool = False,
    errors: list[str] | None = None,
) -> Iterator[CaptureRecord]:
    """Stream every record under ``root`` (a prefix, endpoint or variant folder) in file order.

    ``start``/``end`` (aware or UTC-naive) keep records with start <= inferenceTime < end. With
    ``skip_invalid`` a bad line is recorded in ``errors`` and skipped instead of raising, so one
    corrupt file cannot stop a monitoring run.
    """
    start = start.replace(tzinfo=UTC) if start and not start.tzinfo else start
    end = end.replace(tzinfo=UTC) if end and not end.tzinfo else end
    for path in iter_capture_files(root, start=start, end=end):
        with path.open("r", encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = parse_record(line, source=str(path), line_number=number)
                except CaptureFormatError as error:
                    if not skip_invalid:
                        raise
                    if errors is not None:
                        errors.append(str(error))
                    continue
                if start is not None and record.inference_time < start:
                    continue
                if end is not None and record.inference_time >= end:
                    continue
                yield record
