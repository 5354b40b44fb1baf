"""Where things live locally: `s3://bucket/key` under one folder, `/opt/ml/...` per step.

Steps see the same paths and URIs as on AWS; only this module knows they are folders here.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from dogbreeds.local_executor.errors import LocalExecutorError

CONTAINER_ROOT = "/opt/ml"
# Set in every processing step's environment: `s3://bucket/key` is `$DOGBREEDS_LOCAL_S3_ROOT/bucket/key`.
# pipeline_code/container/dogbreeds_jobs/monitoring/monitor_io.py reads the same name.
LOCAL_S3_ROOT_ENV = "DOGBREEDS_LOCAL_S3_ROOT"
# `/opt/ml` as a whole path segment, also inside `--flag=/opt/ml/x` or a `a:/opt/ml/b` list.
_CONTAINER_PATH = re.compile(r"(?<![\w./-])/opt/ml(?=/|$|[^\w.-])")


class S3MappingError(LocalExecutorError):
    """An S3 URI is malformed or names nothing in the local S3 folder."""


class LocalS3:
    """`s3://bucket/key` is the file or folder `<root>/bucket/key`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path_for(self, uri: str) -> Path:
        if not isinstance(uri, str) or not uri.startswith("s3://"):
            raise S3MappingError(f"expected an s3://bucket/key URI, got {uri!r}")
        bucket, _, key = uri[len("s3://") :].partition("/")
        if not bucket or ".." in Path(key).parts:
            raise S3MappingError(f"{uri!r} has no bucket or climbs out of it with '..'")
        return self.root / bucket / key.rstrip("/")

    def uri_for(self, path: Path) -> str:
        relative = Path(path).resolve().relative_to(self.root.resolve())
        return "s3://" + relative.as_posix()

    def exists(self, uri: str) -> bool:
        path = self.path_for(uri)
        return path.is_file() or (path.is_dir() and any(path.iterdir()))

    def read_json(self, uri: str) -> Any:
        path = self.path_for(uri)
        if not path.is_file():
            raise S3MappingError(f"{uri!r} is not a file (looked at {path})")
        try:
            return json.loads(path.read_text())
        except ValueError as error:
            raise S3MappingError(f"{uri!r} is not valid JSON ({error})") from None

    def download(self, uri: str, destination: Path, shard: tuple[int, int] | None = None) -> None:
        """Copy what an S3Prefix input names into `destination`, as SageMaker stages it.

        Every object whose key starts with the URI's key lands at the rest of its key after that
        prefix (so a "folder" brings its contents); a URI that names one object lands under that
        object's own name, the last part of its key.

        `shard=(index, count)` is ShardedByS3Key on host index+1 of count: this host gets every
        count-th object in key order, so the hosts' shares are disjoint and cover every object.
        (SageMaker promises each instance about 1/count of the objects, not which ones; job code
        must not depend on the assignment.)
        """
        destination.mkdir(parents=True, exist_ok=True)
        for position, (source, target) in enumerate(self._objects(uri, destination)):
            if shard is not None and position % shard[1] != shard[0]:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)

    def _objects(self, uri: str, destination: Path) -> list[tuple[Path, Path]]:
        """(local object file, where it lands) for every object the URI names, in key order."""
        source = self.path_for(uri)
        if source.is_file():
            return [(source, destination / source.name)]
        if source.is_dir() and uri.endswith("/"):
            return [(path, destination / path.relative_to(source)) for path in _files(source)]
        matches = sorted(source.parent.glob(glob_escape(source.name) + "*")) if source.parent.is_dir() else []
        if not matches:
            raise S3MappingError(f"no objects at {uri!r} (local folder {source})")
        pairs = []
        for match in matches:
            remainder = match.name[len(source.name) :].lstrip("/")
            target = destination / remainder if remainder else destination
            if match.is_dir():
                pairs += [(path, target / path.relative_to(match)) for path in _files(match)]
            else:
                pairs.append((match, target))
        return sorted(pairs, key=lambda pair: self.uri_for(pair[0]))

    def upload(self, source: Path, uri: str) -> None:
        """Copy a folder's contents to the S3 prefix `uri` (what an output upload does)."""
        target = self.path_for(uri)
        target.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)

    def put_file(self, source: Path, uri: str) -> None:
        target = self.path_for(uri)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def _files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file())


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


class ContainerPaths:
    """Maps `/opt/ml/...` strings to one step's own folder, so steps never share a scratch path."""

    def __init__(self, step_root: Path) -> None:
        self.step_root = Path(step_root)
        self.opt_ml = self.step_root / "opt" / "ml"

    def local(self, container_path: str) -> Path:
        """The local folder behind a container path such as `/opt/ml/processing/input/data`."""
        mapped = self.map(container_path)
        if mapped == container_path:
            raise S3MappingError(
                f"container path {container_path!r} is outside {CONTAINER_ROOT}; "
                "local mode maps only /opt/ml paths"
            )
        return Path(mapped)

    def map(self, value: Any) -> Any:
        """Replace `/opt/ml` in every string inside `value` (lists and dicts included)."""
        if isinstance(value, str):
            return _CONTAINER_PATH.sub(lambda _: str(self.opt_ml), value)
        if isinstance(value, list):
            return [self.map(item) for item in value]
        if isinstance(value, dict):
            return {key: self.map(item) for key, item in value.items()}
        return value
