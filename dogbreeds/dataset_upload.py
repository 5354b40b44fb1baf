"""Upload an image dataset (one folder per breed) to an environment's bucket, validated first.

Class folders are normalised the one way the whole system names breeds (class_names), every image is
decoded locally before anything is sent (bad files are reported and left out, and so is anything in
the tree that is not a regular file in a class folder, each with its reason), uploads run in
parallel with a progress bar, and files already in the bucket unchanged are skipped: each object
carries its content's SHA-256 in its metadata, compared before sending. (ETags cannot be compared:
with SSE-KMS they are not MD5s of the content.)

Memory stays small whatever the files are: a file's type and size come from ``lstat``/``fstat``
before it is opened (a FIFO is never opened for reading, which would block), validation reads the
header and then only what decoding needs, and hashing and uploading stream the file in chunks.

An object claims a hash only for the content it has: each upload is one PUT that sends the SHA-256
as S3's own ``ChecksumSHA256`` too (S3 refuses the PUT if the bytes differ), the body is hashed as it
is sent and cut short if the file changed since it was validated, and an interrupted PUT stores
nothing. A file is only skipped as unchanged when S3's verified checksum agrees as well.

By default a dataset goes to a prefix named after its content (``datasets/<fingerprint>/``). The
pipeline's step cache keys on the dataset URI, not on what lies under it, so a changed dataset must
get a new URI or a rerun would reuse the old preprocessing and model.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import mimetypes
import os
import stat
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import CancelledError, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from tqdm import tqdm

from pipeline_code.container.dogbreeds_jobs.data.class_names import normalise_class_name
from pipeline_code.container.dogbreeds_jobs.data.image_decoding import ImageDecodeError, decode_image

SHA256_METADATA_KEY = "sha256"

# A file larger than this is refused from its size alone. A photo at the decoder's pixel limit
# (40 MP) is at most 120 MB even stored uncompressed (8-bit RGB BMP or TIFF).
DEFAULT_MAX_FILE_BYTES = 200_000_000
CHUNK_BYTES = 2**20  # hashing reads the file this much at a time

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")


@dataclass(frozen=True)
class DatasetFile:
    path: Path
    breed: str  # normalised class name
    relative_key: str  # <breed>/<file name>, below the dataset prefix
    sha256: str
    size: int


@dataclass
class ScanReport:
    files: list[DatasetFile] = field(default_factory=list)
    bad: list[tuple[Path, str]] = field(default_factory=list)  # (file, reason): not a usable image
    # (entry, reason): not a regular file in a class folder (top-level files, links that lead
    # nowhere, FIFOs, devices, folders that cannot be listed)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    merged_folders: dict[str, list[str]] = field(default_factory=dict)  # breed -> folder names

    @property
    def breeds(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for item in self.files:
            counts[item.breed] += 1
        return dict(sorted(counts.items()))


@dataclass
class UploadReport:
    uploaded: int = 0
    skipped_unchanged: int = 0
    bytes_sent: int = 0
    failed: list[tuple[Path, str]] = field(default_factory=list)  # (file, reason): not uploaded


class UploadInterrupted(KeyboardInterrupt):
    """Ctrl-C during an upload; ``report`` says what had been done (every finished PUT is whole)."""

    def __init__(self, report: UploadReport, total: int) -> None:
        super().__init__()
        self.report = report
        self.total = total


class ContentChangedError(CancelledError):
    """The file's bytes are not those validated. A CancelledError so that botocore neither wraps
    nor retries it: raised while the body is read, it ends the request before its last byte."""


def dataset_fingerprint(files: Iterable[DatasetFile]) -> str:
    """Content address of a dataset: the same files under the same breeds give the same value."""
    digest = hashlib.sha256()
    for item in sorted(files, key=lambda f: f.relative_key):
        digest.update(f"{item.relative_key}\0{item.sha256}\n".encode())
    return digest.hexdigest()[:16]


def describe_decode_error(error: ImageDecodeError) -> str:
    """A short human reason, e.g. ``not an image (cannot identify image file)``."""
    detail = error.detail
    if error.reason == "empty":
        return "empty file"
    if error.reason == "not_an_image":
        return f"not an image ({detail})" if detail else "not an image"
    if error.reason == "unsupported_format":
        return f"unsupported image format ({detail})"
    if error.reason == "truncated":
        kind = "truncated" if "truncated" in detail.lower() else "corrupt"
        return f"{kind} {error.image_format or 'image'}" + (f": {detail}" if detail else "")
    return f"too many pixels ({detail})" if detail else "too many pixels"


def _os_reason(error: OSError) -> str:
    return error.strerror or type(error).__name__


def _mb(size: int) -> str:
    return f"{size / 1e6:,.1f} MB"


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISDIR, "a folder")):  # fmt: skip
        if test(mode):
            return name
    return "not a regular file"


def _classify(path: Path) -> tuple[str, str]:
    """``("dir" | "file" | "linked_dir" | "skip", reason)`` from lstat: nothing is opened."""
    try:
        mode = os.lstat(path).st_mode
        if stat.S_ISDIR(mode):
            return "dir", ""
        if stat.S_ISREG(mode):
            return "file", ""
        if not stat.S_ISLNK(mode):
            return "skip", f"{_file_kind(mode)}, not a regular file"
        target = os.readlink(path)
    except OSError as error:
        return "skip", f"cannot be examined ({_os_reason(error)})"
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "skip", f"dangling symlink (to {target})"
    except OSError as error:
        return "skip", f"symlink that cannot be followed ({_os_reason(error)}; to {target})"
    if stat.S_ISREG(mode):
        return "file", ""
    if stat.S_ISDIR(mode):
        return "linked_dir", f"symlink to a folder, not followed (to {target})"
    return "skip", f"symlink to {_file_kind(mode)}, not a regular file (to {target})"


def _list(folder: Path, skipped: list[tuple[Path, str]]) -> list[Path]:
    """The visible entries of ``folder``, sorted; a folder that cannot be listed is reported."""
    try:
        with os.scandir(folder) as entries:
            names = sorted(entry.name for entry in entries if not entry.name.startswith("."))
    except OSError as error:
        skipped.append((folder, f"folder cannot be read ({_os_reason(error)})"))
        return []
    return [folder / name for name in names]


def _files_below(class_dir: Path, skipped: list[tuple[Path, str]]) -> list[Path]:
    """Regular files (or links to them) anywhere below ``class_dir``; the rest goes to ``skipped``."""
    found: list[Path] = []
    for path in _list(class_dir, skipped):
        kind, reason = _classify(path)
        if kind == "dir":
            found += _files_below(path, skipped)
        elif kind == "file":
            found.append(path)
        else:
            skipped.append((path, reason))
    return found


def open_regular_file(path: Path) -> BinaryIO:
    """Open ``path`` for reading only if it is a regular file (a FIFO would block a plain open)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise OSError(errno.EINVAL, f"{_file_kind(mode)}, not a regular file", str(path))
    return os.fdopen(fd, "rb")


def _sha256(handle: BinaryIO, stop: threading.Event) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    while chunk := handle.read(CHUNK_BYTES):
        if stop.is_set():
            raise CancelledError
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def _parallel(
    work: Callable[[_Item, threading.Event], _Result],
    items: Sequence[_Item],
    workers: int,
    desc: str,
    on_result: Callable[[_Result], None],
) -> None:
    """Run ``work`` over ``items`` in threads; results reach ``on_result`` in order.

    On Ctrl-C (or any error) the work not started is cancelled, the work under way is told to stop
    (``stop`` is set) and waited for, and the exception goes on: no thread outlives the call.
    """
    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    try:
        futures = [pool.submit(work, item, stop) for item in items]
        with tqdm(total=len(futures), desc=desc, unit="img", disable=None) as bar:
            for future in futures:
                on_result(future.result())
                bar.update(1)
    except BaseException:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def scan_dataset(
    root: Path, workers: int = 8, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
) -> ScanReport:
    """Find, normalise and validate every file under ``root/<class folder>/``."""
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is not a folder of class folders")
    skipped: list[tuple[Path, str]] = []
    top = _list(root, skipped)
    if skipped:
        raise NotADirectoryError(f"{root} cannot be read: {skipped[0][1]}")
    class_dirs: list[Path] = []
    for path in top:
        kind, reason = _classify(path)
        if kind in ("dir", "linked_dir"):  # a linked class folder is followed, as it always was
            class_dirs.append(path)
        elif kind == "file":
            skipped.append((path, f"not in a class folder (expected {root}/<breed>/{path.name})"))
        else:
            skipped.append((path, reason))
    if not class_dirs:
        raise ValueError(
            f"{root} has no class folders; expected {root}/<breed>/<image>, e.g. "
            f"{root}/n02085620-Chihuahua/img1.jpg or {root}/001.Affenpinscher/img1.jpg"
        )
    folders_by_breed: dict[str, list[str]] = defaultdict(list)
    candidates: list[tuple[Path, str]] = []
    for class_dir in class_dirs:
        breed = normalise_class_name(class_dir.name)
        folders_by_breed[breed].append(class_dir.name)
        candidates += [(path, breed) for path in _files_below(class_dir, skipped)]
    report = ScanReport(
        skipped=skipped, merged_folders={b: f for b, f in folders_by_breed.items() if len(f) > 1}
    )

    def check(candidate: tuple[Path, str], stop: threading.Event) -> DatasetFile | tuple[Path, str]:
        path, breed = candidate
        if stop.is_set():
            raise CancelledError
        try:
            with open_regular_file(path) as handle:
                size = os.fstat(handle.fileno()).st_size
                if size == 0:
                    return path, "empty file"
                if size > max_file_bytes:
                    return path, f"too large for an image ({_mb(size)}; the limit is {_mb(max_file_bytes)})"
                try:
                    decode_image(handle)  # the header, then only what decoding needs
                except ImageDecodeError as error:
                    return path, describe_decode_error(error)
                handle.seek(0)
                sha256, size = _sha256(handle, stop)
        except OSError as error:
            return path, f"cannot be read ({_os_reason(error)})"
        relative = path.relative_to(root)
        # The breed folder is renamed to its normalised name; the file name is kept.
        key = "/".join([breed, *relative.parts[1:]])
        return DatasetFile(path, breed, key, sha256, size)

    def collect(result: DatasetFile | tuple[Path, str]) -> None:
        if isinstance(result, DatasetFile):
            report.files.append(result)
        else:
            report.bad.append(result)

    _parallel(check, candidates, workers, "validate", collect)
    counts = Counter(item.relative_key for item in report.files)
    duplicates = sorted(key for key, count in counts.items() if count > 1)
    if duplicates:
        raise ValueError(
            f"files from folders that normalise to the same breed collide: {duplicates[:5]}; "
            "rename one of them"
        )
    return report


def existing_objects(s3: Any, bucket: str, prefix: str) -> dict[str, int]:
    """key -> size of every object under ``prefix``."""
    sizes: dict[str, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix.strip("/") + "/"):
        for item in page.get("Contents", []):
            sizes[item["Key"]] = item["Size"]
    return sizes


def _checksum_header(sha256_hex: str) -> str:
    """The hex SHA-256 as S3's ChecksumSHA256 (base64 of the digest)."""
    return base64.b64encode(bytes.fromhex(sha256_hex)).decode()


class _VerifiedBody:
    """A request body that hashes the file as it is read and never hands over its last bytes unless
    they complete exactly the validated content: a file changed on disk is cut short (the PUT then
    stores nothing). It stops at the next read once ``stop`` is set (Ctrl-C)."""

    def __init__(self, handle: BinaryIO, item: DatasetFile, stop: threading.Event) -> None:
        self._handle, self._item, self._stop = handle, item, stop
        self._digest = hashlib.sha256()
        self._position = 0

    def read(self, amount: int | None = -1) -> bytes:
        if self._stop.is_set():
            raise CancelledError("upload interrupted")
        if amount is None or amount < 0:
            amount = max(self._item.size - self._position, 0) + 1
        chunk = self._handle.read(amount)
        self._digest.update(chunk)
        self._position += len(chunk)
        if self._position > self._item.size or (not chunk and self._position < self._item.size):
            raise ContentChangedError("its size changed after it was validated")
        if self._position == self._item.size and self._digest.hexdigest() != self._item.sha256:
            raise ContentChangedError("its content changed after it was validated")
        return chunk

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        position = self._handle.seek(offset, whence)
        if position != 0:
            raise OSError(0, "an upload body can only be rewound to its start")
        self._digest, self._position = hashlib.sha256(), 0
        return position

    def tell(self) -> int:
        return self._position


def upload_dataset(
    s3: Any,
    bucket: str,
    prefix: str,
    files: Iterable[DatasetFile],
    existing: dict[str, int],
    workers: int = 8,
    on_progress: Callable[[int], None] | None = None,
) -> UploadReport:
    """Upload ``files`` not already present with the same content; returns what was done.

    A file whose bytes differ from what was validated is not uploaded (``failed``). Ctrl-C raises
    ``UploadInterrupted`` once the PUTs under way are stopped.
    """
    report = UploadReport()
    files = list(files)
    lock = threading.Lock()  # workers count what they did, so a Ctrl-C report is exact

    def key_of(item: DatasetFile) -> str:
        return f"{prefix.strip('/')}/{item.relative_key}"

    def unchanged(item: DatasetFile) -> bool:
        if existing.get(key_of(item)) != item.size:
            return False
        head = s3.head_object(Bucket=bucket, Key=key_of(item), ChecksumMode="ENABLED")
        # The metadata alone is what the uploader claimed; S3's checksum is what S3 verified.
        return (
            head.get("Metadata", {}).get(SHA256_METADATA_KEY) == item.sha256
            and head.get("ChecksumSHA256") == _checksum_header(item.sha256)
        )

    def send(item: DatasetFile, stop: threading.Event) -> None:
        outcome, reason = put(item, stop)
        with lock:
            if outcome == "sent":
                report.uploaded += 1
                report.bytes_sent += item.size
            elif outcome == "unchanged":
                report.skipped_unchanged += 1
            else:
                report.failed.append((item.path, reason))

    def put(item: DatasetFile, stop: threading.Event) -> tuple[str, str]:
        if stop.is_set():
            raise CancelledError
        if unchanged(item):
            return "unchanged", ""
        content_type = mimetypes.guess_type(item.path.name)[0] or "application/octet-stream"
        try:
            with open_regular_file(item.path) as handle:
                s3.put_object(
                    Bucket=bucket,
                    Key=key_of(item),
                    Body=_VerifiedBody(handle, item, stop),
                    ContentLength=item.size,
                    ContentType=content_type,
                    ChecksumAlgorithm="SHA256",
                    ChecksumSHA256=_checksum_header(item.sha256),
                    Metadata={SHA256_METADATA_KEY: item.sha256},
                )
        except ContentChangedError as error:
            return "failed", f"not uploaded: {error}"
        except OSError as error:
            return "failed", f"not uploaded: cannot be read ({_os_reason(error)})"
        return "sent", ""

    try:
        _parallel(send, files, workers, "upload", lambda _: on_progress and on_progress(1))
    except KeyboardInterrupt:
        raise UploadInterrupted(report, len(files)) from None
    report.failed.sort()
    return report
