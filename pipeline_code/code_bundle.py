"""The container code as SageMaker takes it: a deterministic sourcedir.tar.gz, plus run_step.sh.

The bundle holds ``pipeline_code/container`` (entry scripts and job code) and, under ``contract/``,
the few modules of the project's bottom layer the jobs import (``SHIPPED_CONTRACT_MODULES``: standard
library only), so a job and the stacks read the same instance table, metric and variable names.

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
CONTRACT_DIR = PIPELINE_CODE_DIR.parent / "contract"
# Listed, not globbed: contract/settings.py needs pydantic, which no SageMaker image holds.
SHIPPED_CONTRACT_MODULES = (
    "__init__.py",
    "environment_variables.py",
    "instance_types.py",
    "monitoring_metrics.py",
)
SHIPPED_PACKAGES = frozenset({CONTRACT_DIR.name})
RUN_STEP_SCRIPT = PIPELINE_CODE_DIR / "run_step.sh"
SOURCE_BUNDLE_NAME = "sourcedir.tar.gz"

_EXCLUDED_PARTS = {"__pycache__", ".pytest_cache"}
_EXCLUDED_SUFFIXES = {".pyc", ".pyo"}


def bundle_files(source_dir: Path = CONTAINER_CODE_DIR) -> list[tuple[str, Path]]:
    """(name inside the bundle, file) for every file the bundle holds, sorted by name."""
    files = [
        (path.relative_to(source_dir).as_posix(), path)
        for path in source_dir.rglob("*")
        if path.is_file()
        and not _EXCLUDED_PARTS.intersection(path.relative_to(source_dir).parts)
        and path.suffix not in _EXCLUDED_SUFFIXES
    ]
    files += [(f"{CONTRACT_DIR.name}/{name}", CONTRACT_DIR / name) for name in SHIPPED_CONTRACT_MODULES]
    return sorted(files)


def build_source_bundle(destination: Path, source_dir: Path = CONTAINER_CODE_DIR) -> Path:
    """Write sourcedir.tar.gz of ``source_dir`` to ``destination`` (a file path); return it."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, path in bundle_files(source_dir):
            info = tarfile.TarInfo(name)
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
    with os.fdopen(handle, "wb") as out, gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) as gz:
        gz.write(raw.getvalue())
    os.replace(temporary, destination)
    return destination


def bundle_fingerprint(source_dir: Path = CONTAINER_CODE_DIR) -> str:
    """A short hash of the bundle's content, for content-addressed local staging."""
    digest = hashlib.sha256()
    for name, path in bundle_files(source_dir):
        digest.update(name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
