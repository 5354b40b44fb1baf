"""Read and write monitoring data at an ``s3://`` URI or a local path, as a stream.

The monitors read capture and ground truth that can be far larger than memory, and write reports
under dated prefixes, so they need only four operations: list the objects under a prefix, stream
one object's lines, read a small object whole, write a small object. On AWS that is boto3 (a
paginated ListObjectsV2 and a streaming GetObject); on a laptop it is ``os.walk`` and open files.

Local mode: when ``DOGBREEDS_LOCAL_S3_ROOT`` is set, ``s3://bucket/key`` means the file
``$DOGBREEDS_LOCAL_S3_ROOT/bucket/key``, the layout of the local executor's S3 folder. The step
environment inherits it from `dogbreeds local monitor`, so the same definition runs unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

LOCAL_S3_ROOT_ENV = "DOGBREEDS_LOCAL_S3_ROOT"
# Bytes per read of a streamed object: lines are reassembled across chunks, memory stays flat.
STREAM_CHUNK_BYTES = 1 << 20
# The longest line a monitor holds (bytes, newline included). A real-time endpoint accepts a
# request of at most 6 MB and returns at most 6 MB; capture stores a body base64-encoded (8 MiB
# for 6 MiB) or, for JSON/CSV content types, as text, so one capture line of two maximal bodies is
# about 16 MiB plus a few hundred bytes of metadata. 20 MiB leaves room for that metadata and for
# the escaping of a text body; no endpoint can write a longer line, so a longer one is not a
# capture record and is skipped without being held (ground-truth lines are far shorter still).
MAX_LINE_BYTES = 20 * 1024 * 1024


class MonitorDataError(ValueError):
    """A URI or path the monitor was given cannot be used; the message says which and why."""


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key); a clear error for anything else."""
    if not uri.startswith("s3://"):
        raise MonitorDataError(f"expected an s3://bucket/key URI, got {uri!r}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise MonitorDataError(f"{uri!r} has no bucket name")
    return bucket, key


def local_path(location: str) -> Path | None:
    """The local path behind ``location``, or None when it is a real S3 URI."""
    if not location:
        raise MonitorDataError("an empty location was given; pass an s3:// URI or a local path")
    if location.startswith("s3://"):
        root = os.environ.get(LOCAL_S3_ROOT_ENV)
        if not root:
            return None
        bucket, key = split_s3_uri(location)
        if ".." in Path(key).parts:
            raise MonitorDataError(f"{location!r} climbs out of its bucket with '..'")
        return Path(root) / bucket / key
    if "://" in location:
        raise MonitorDataError(f"{location!r}: only s3:// URIs and local paths are supported")
    return Path(location)


def join(location: str, *parts: str) -> str:
    """Append path parts to a URI or path with exactly one '/' between them."""
    pieces = [location.rstrip("/")] + [p.strip("/") for p in parts if p.strip("/")]
    return "/".join(pieces)


@lru_cache(maxsize=1)
def s3_client():  # pragma: no cover - trivial
    """One client per process; boto3 reads region and credentials from the job's environment."""
    import boto3

    return boto3.client("s3")


def list_objects(prefix: str, *, suffix: str = "") -> Iterator[str]:
    """Every object (file) under ``prefix`` ending in ``suffix``, in key order, as full locations.

    The prefix is a folder: ``.../2026/11/27/10`` lists ``.../2026/11/27/10/*`` and never
    ``.../2026/11/27/100``. A missing prefix lists nothing (an hour without traffic is normal).
    """
    path = local_path(prefix)
    if path is not None:
        if not path.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames.sort()
            for name in sorted(filenames):
                if name.endswith(suffix):
                    yield str(Path(dirpath) / name)
        return
    bucket, key = split_s3_uri(prefix)
    key = key.rstrip("/") + "/" if key.strip("/") else ""
    paginator = s3_client().get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=key):
        for item in page.get("Contents", []):
            if item["Key"].endswith(suffix) and not item["Key"].endswith("/"):
                yield f"s3://{bucket}/{item['Key']}"


def list_children(prefix: str) -> list[str]:
    """The names of the immediate sub-folders of ``prefix`` (S3 common prefixes), sorted."""
    path = local_path(prefix)
    if path is not None:
        return sorted(p.name for p in path.iterdir() if p.is_dir()) if path.is_dir() else []
    bucket, key = split_s3_uri(prefix)
    key = key.rstrip("/") + "/" if key.strip("/") else ""
    names = []
    paginator = s3_client().get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=key, Delimiter="/"):
        for item in page.get("CommonPrefixes", []):
            names.append(item["Prefix"][len(key) :].strip("/"))
    return sorted(names)


@dataclass(frozen=True)
class OversizedLine:
    """Stands in for a line longer than the cap: how long it was; its bytes were never held."""

    length: int

    def describe(self, location: str, line_number: int) -> str:
        return (
            f"{location}:{line_number}: line of {self.length} bytes is longer than the "
            f"{MAX_LINE_BYTES}-byte cap (no real capture or ground-truth line is that long); "
            "skipped unread"
        )


def split_lines(
    read: Callable[[int], bytes], max_line_bytes: int | None = None
) -> Iterator[bytes | OversizedLine]:
    """Lines (newline kept) from a ``read(n)`` stream, ``STREAM_CHUNK_BYTES`` at a time.

    A line longer than ``max_line_bytes`` (newline included) becomes an ``OversizedLine``: its
    first ``max_line_bytes`` are buffered, then dropped, and the rest is read and discarded up to
    its newline, so memory never holds more than the cap plus one chunk whatever a line's length.
    """
    max_line_bytes = MAX_LINE_BYTES if max_line_bytes is None else max_line_bytes
    parts: list[bytes] = []
    held = 0  # bytes of the current line in ``parts``
    skipped = -1  # >= 0 while discarding an over-long line: its length so far
    while True:
        chunk = read(STREAM_CHUNK_BYTES)
        if not chunk:
            break
        start = 0
        while start < len(chunk):
            end = chunk.find(b"\n", start)
            stop = len(chunk) if end < 0 else end + 1
            size = stop - start
            if skipped >= 0:
                skipped += size
            elif held + size > max_line_bytes:
                skipped, parts, held = held + size, [], 0
            else:
                parts.append(chunk[start:stop] if start or stop < len(chunk) else chunk)
                held += size
            start = stop
            if end < 0:
                break
            if skipped >= 0:
                yield OversizedLine(skipped)
                skipped = -1
            else:
                yield parts[0] if len(parts) == 1 else b"".join(parts)
                parts, held = [], 0
    if skipped >= 0:
        yield OversizedLine(skipped)
    elif parts:
        yield b"".join(parts)


def iter_lines(location: str, max_line_bytes: int | None = None) -> Iterator[bytes | OversizedLine]:
    """The lines of one object, streamed: memory holds one chunk and one line at a time.

    Local files and S3 objects are both read in ``STREAM_CHUNK_BYTES`` reads and split here, so a
    line longer than ``max_line_bytes`` comes back as an ``OversizedLine`` from either, in its
    place (line numbers stay right), without ever being held whole.
    """
    path = local_path(location)
    if path is not None:
        with path.open("rb", buffering=0) as handle:
            yield from split_lines(handle.read, max_line_bytes)
        return
    bucket, key = split_s3_uri(location)
    body = s3_client().get_object(Bucket=bucket, Key=key)["Body"]
    try:
        yield from split_lines(body.read, max_line_bytes)
    finally:
        body.close()


def read_bytes(location: str) -> bytes:
    """A small object whole (baseline files); a missing one is a MonitorDataError naming it."""
    path = local_path(location)
    if path is not None:
        if not path.is_file():
            raise MonitorDataError(f"{location} does not exist (looked at {path})")
        return path.read_bytes()
    bucket, key = split_s3_uri(location)
    client = s3_client()
    try:
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except client.exceptions.NoSuchKey as error:
        raise MonitorDataError(f"{location} does not exist") from error


def write_bytes(location: str, data: bytes, content_type: str = "application/octet-stream") -> None:
    """Write one small object (a report file), creating folders as needed."""
    path = local_path(location)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return
    bucket, key = split_s3_uri(location)
    s3_client().put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)
