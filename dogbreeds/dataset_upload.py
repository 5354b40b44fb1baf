"""Upload an image dataset (one folder per breed) to an environment's bucket, validated first.

Class folders are normalised the one way the whole system names breeds (class_names), every image is
decoded locally before anything is sent (bad files are reported and left out), uploads run in
parallel with a progress bar, and files already in the bucket unchanged are skipped: each object
carries its content's SHA-256 in its metadata, compared before sending. (ETags cannot be compared:
with SSE-KMS they are not MD5s of the content.)

By default a dataset goes to a prefix named after its content (``datasets/<fingerprint>/``). The
pipeline's step cache keys on the dataset URI, not on what lies under it, so a changed dataset must
get a new URI or a rerun would reuse the old preprocessing and model.
"""

from __future__ import annotations

import hashlib
import mimetypes
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from pipeline_code.container.class_names import normalise_class_name
from pipeline_code.container.image_decoding import ImageDecodeError, decode_image

SHA256_METADATA_KEY = "sha256"


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
    bad: list[tuple[Path, str]] = field(default_factory=list)  # (file, reason)
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


def dataset_fingerprint(files: Iterable[DatasetFile]) -> str:
    """Content address of a dataset: the same files under the same breeds give the same value."""
    digest = hashlib.sha256()
    for item in sorted(files, key=lambda f: f.relative_key):
        digest.update(f"{item.relative_key}\0{item.sha256}\n".encode())
    return digest.hexdigest()[:16]


def scan_dataset(root: Path, workers: int = 8) -> ScanReport:
    """Find, normalise and validate every file under ``root/<class folder>/``."""
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is not a folder of class folders")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
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
        candidates += [
            (path, breed)
            for path in sorted(class_dir.rglob("*"))
            if path.is_file() and not path.name.startswith(".")
        ]
    report = ScanReport(
        merged_folders={b: f for b, f in folders_by_breed.items() if len(f) > 1}
    )

    def check(candidate: tuple[Path, str]) -> DatasetFile | tuple[Path, str]:
        path, breed = candidate
        try:
            data = path.read_bytes()
            decode_image(data)
        except OSError as error:
            return path, f"cannot be read: {error}"
        except ImageDecodeError as error:
            return path, str(error)
        relative = path.relative_to(root)
        # The breed folder is renamed to its normalised name; the file name is kept.
        key = "/".join([breed, *relative.parts[1:]])
        return DatasetFile(path, breed, key, hashlib.sha256(data).hexdigest(), len(data))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = tqdm(
            pool.map(check, candidates), total=len(candidates), desc="validate", unit="img",
            disable=None,
        )
        for result in results:
            if isinstance(result, DatasetFile):
                report.files.append(result)
            else:
                report.bad.append(result)
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


def upload_dataset(
    s3: Any,
    bucket: str,
    prefix: str,
    files: Iterable[DatasetFile],
    existing: dict[str, int],
    workers: int = 8,
    on_progress: Callable[[int], None] | None = None,
) -> UploadReport:
    """Upload ``files`` not already present with the same content; returns what was done."""
    report = UploadReport()
    files = list(files)

    def key_of(item: DatasetFile) -> str:
        return f"{prefix.strip('/')}/{item.relative_key}"

    def unchanged(item: DatasetFile) -> bool:
        if existing.get(key_of(item)) != item.size:
            return False
        head = s3.head_object(Bucket=bucket, Key=key_of(item))
        return head.get("Metadata", {}).get(SHA256_METADATA_KEY) == item.sha256

    def send(item: DatasetFile) -> tuple[bool, int]:
        if unchanged(item):
            return False, 0
        content_type = mimetypes.guess_type(item.path.name)[0] or "application/octet-stream"
        with item.path.open("rb") as body:
            s3.put_object(
                Bucket=bucket,
                Key=key_of(item),
                Body=body,
                ContentType=content_type,
                Metadata={SHA256_METADATA_KEY: item.sha256},
            )
        return True, item.size

    with ThreadPoolExecutor(max_workers=workers) as pool, tqdm(
        total=len(files), desc="upload", unit="img", disable=None
    ) as bar:
        for sent, size in pool.map(send, files):
            if sent:
                report.uploaded += 1
                report.bytes_sent += size
            else:
                report.skipped_unchanged += 1
            bar.update(1)
            if on_progress:
                on_progress(1)
    return report
