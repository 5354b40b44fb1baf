"""The container code as SageMaker takes it: a deterministic sourcedir.tar.gz, plus run_step.sh.

Training jobs unpack sourcedir.tar.gz as their source_dir; processing jobs get it as an input and
run_step.sh unpacks it. Identical input files give a byte-identical tarball (sorted entries, fixed
owners, times and modes, gzip without a timestamp), so CDK's content hash and the pipeline's step
cache only change when the code does.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import tempfile
from pathlib import Path

PIPELINE_CODE_DIR = Path(__file__).resolve().parent
CONTAINER_CODE_DIR = PIPELINE_CODE_DIR / "container"
RUN_STEP_SCRIPT = PIPELINE_CODE_DIR / "run_step.sh"
SOURCE_BUNDLE_NAME = "sourcedir.tar.gz"

_EXCLUDED_PARTS = {"__pycache__", ".pytest_cache"}
_EXCLUDED_SUFFIXES = {".pyc", ".pyo"}


def bundle_files(source_dir: Path = CONTAINER_CODE_DIR) -> list[Path]:
    return sorted(
        path
        for path in source_dir.rglob("*")
        if path.is_file()
        and not _EXCLUDED_PARTS.intersection(path.relative_to(source_dir).parts)
        and path.suffix not in _EXCLUDED_SUFFIXES
    )


def build_source_bundle(destination: Path, source_dir: Path = CONTAINER_CODE_DIR) -> Path:
    """Write sourcedir.tar.gz of ``source_dir`` to ``destination`` (a file path); return it."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in bundle_files(source_dir):
            info = tarfile.TarInfo(path.relative_to(source_dir).as_posix())
            data = path.read_bytes()
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    destination.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename: parallel synths sharing a cached bundle never read half a file.
    handle, temporary = tempfile.mkstemp(dir=destination.parent, suffix=".tmp")
    with os.fdopen(handle, "wb") as out, gzip.GzipFile(
        filename="", mode="wb", fileobj=out, mtime=0
    ) as gz:
        gz.write(raw.getvalue())
    os.replace(temporary, destination)
    return destination


def bundle_fingerprint(source_dir: Path = CONTAINER_CODE_DIR) -> str:
    """A short hash of the bundle's content, for content-addressed local staging."""
    digest = hashlib.sha256()
    for path in bundle_files(source_dir):
        digest.update(path.relative_to(source_dir).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
