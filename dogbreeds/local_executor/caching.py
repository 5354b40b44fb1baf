"""Step caching: a step with CacheConfig enabled is skipped when an earlier run did the same work.

"The same work" is SageMaker's rule (same step type and resolved arguments) plus a fingerprint of
the input files, because locally a folder can change under an unchanged URI. Execution variables
are masked out of the key (the SDK puts the execution id in default output paths), and, as on
SageMaker, a cache hit hands the earlier run's output locations to the steps that follow.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from dogbreeds.local_executor.errors import DefinitionError
from dogbreeds.local_executor.s3_mapping import LocalS3, S3MappingError

_DURATION = re.compile(
    r"^P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$"
)
_SECONDS = {
    "years": 365 * 86400,
    "months": 30 * 86400,
    "weeks": 7 * 86400,
    "days": 86400,
    "hours": 3600,
    "minutes": 60,
    "seconds": 1,
}


def expire_seconds(duration: str | None) -> float | None:
    """Seconds in an ISO 8601 duration such as `P30D` or `PT1H`; None means never expires."""
    if not duration:
        return None
    match = _DURATION.match(duration)
    if not match or duration in ("P", "PT"):
        raise DefinitionError(
            f"CacheConfig ExpireAfter {duration!r} is not an ISO 8601 duration such as P30D or PT1H"
        )
    return float(sum(int(v) * _SECONDS[k] for k, v in match.groupdict().items() if v))


class StepCache:
    """Cache entries as JSON files under `<workdir>/cache/`, one per key.

    An entry records, besides the step's properties, every output file's size and SHA-256 as the
    step left it. A lookup reuses the entry only while the outputs still match (sizes compared
    first, content hashed only when they agree), so a truncated or overwritten output makes the
    step run again. A damaged entry is a miss, reported through `report`.
    """

    def __init__(
        self, folder: Path, local_s3: LocalS3, report: Callable[[str], None] | None = None
    ) -> None:
        self.folder = Path(folder)
        self.local_s3 = local_s3
        self.report = report or (lambda _text: None)

    def key(self, step_type: str, arguments: Mapping[str, Any]) -> str:
        """`arguments` resolved with execution variables masked (the caller does that)."""
        masked = json.dumps(arguments, sort_keys=True)
        fingerprint = [self._fingerprint(uri) for uri in sorted(set(input_uris(step_type, arguments)))]
        payload = json.dumps([step_type, masked, fingerprint])
        return hashlib.sha256(payload.encode()).hexdigest()

    def lookup(self, key: str, expire_after: str | None, step_name: str = "") -> dict[str, Any] | None:
        """The properties an earlier run produced, if still fresh and its outputs are as it left them."""
        path = self.folder / f"{key}.json"
        if not path.is_file():
            return None
        about = f"step {step_name!r}: " if step_name else ""
        try:
            entry = json.loads(path.read_text())
            problem = _entry_problem(entry)
        except (OSError, ValueError) as error:
            problem = str(error)
        if problem:
            self.report(f"{about}cache entry {path} is damaged ({problem}); running the step")
            return None
        limit = expire_seconds(expire_after)
        if limit is not None and time.time() - entry["created"] > limit:
            return None
        for uri, recorded in entry["outputs"].items():
            change = self._output_change(uri, recorded)
            if change:
                self.report(
                    f"{about}the cached outputs of execution {entry['execution_id']} changed since "
                    f"they were stored ({change}); running the step"
                )
                return None
        return entry

    def store(self, key: str, step_type: str, execution_id: str, properties: Mapping[str, Any]) -> None:
        """Record the step's properties and its outputs' sizes and hashes, atomically."""
        uris = list(output_uris(step_type, properties))
        entry = {
            "created": time.time(),
            "execution_id": execution_id,
            "properties": properties,
            "output_uris": uris,
            "outputs": {uri: self._output_files(uri, with_hashes=True) for uri in uris},
        }
        self.folder.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.folder, prefix=".entry-", suffix=".tmp")
        try:
            with os.fdopen(handle, "w") as out:
                json.dump(entry, out, indent=2)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.folder / f"{key}.json")
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    def _output_files(self, uri: str, *, with_hashes: bool) -> list[list[Any]] | None:
        """[[relative name, size, sha256], ...] of the files an output URI holds; None if absent."""
        try:
            root = self.local_s3.path_for(uri)
        except S3MappingError:
            return None
        if root.is_file():
            files = [(root, root.name)]
        elif root.is_dir():
            files = [(p, p.relative_to(root).as_posix()) for p in sorted(root.rglob("*")) if p.is_file()]
        else:
            return None
        return [[name, p.stat().st_size, _sha256(p) if with_hashes else None] for p, name in files]

    def _output_change(self, uri: str, recorded: Any) -> str | None:
        """Why the output at `uri` no longer matches `recorded`, or None when it does."""
        try:
            current = self._output_files(uri, with_hashes=False)
        except OSError as error:
            return f"{uri}: {error}"
        if current is None:
            return f"{uri} is gone"
        if recorded is None:
            return f"{uri} did not exist when stored"
        names = [name for name, _size, _hash in current]
        if names != [name for name, _size, _hash in recorded]:
            return f"{uri} holds other files"
        for (name, size, _), (_, recorded_size, _) in zip(current, recorded, strict=True):
            if size != recorded_size:
                return f"{_shown(uri, name)}: {size} bytes, {recorded_size} when stored"
        root = self.local_s3.path_for(uri)
        for name, _size, recorded_hash in recorded:
            path = root / name if root.is_dir() else root
            try:
                if _sha256(path) != recorded_hash:
                    return f"{_shown(uri, name)}: its content differs"
            except OSError as error:
                return f"{_shown(uri, name)}: {error}"
        return None

    def _fingerprint(self, uri: str) -> list[Any]:
        # Names, sizes and modification times: cheap for thousands of images, and any edit shows.
        try:
            root = self.local_s3.path_for(uri)
        except S3MappingError:
            return [uri, "unmapped"]
        if root.is_file():
            stat = root.stat()
            return [uri, stat.st_size, stat.st_mtime_ns]
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
        return [
            uri,
            [[p.relative_to(root).as_posix(), p.stat().st_size, p.stat().st_mtime_ns] for p in files],
        ]


def _entry_problem(entry: Any) -> str | None:
    """What is wrong with a parsed cache entry's shape, or None."""
    if not isinstance(entry, dict):
        return f"a JSON {type(entry).__name__}, not an object"
    expected = {"created": (int, float), "execution_id": str, "properties": dict, "outputs": dict}
    for name, kind in expected.items():
        if not isinstance(entry.get(name), kind):
            return f"no valid {name!r}"
    for uri, files in entry["outputs"].items():
        if files is None:
            continue
        if not isinstance(files, list) or not all(
            isinstance(f, list) and len(f) == 3 and isinstance(f[0], str) and isinstance(f[1], int)
            and isinstance(f[2], str) for f in files
        ):  # fmt: skip
            return f"bad file list for {uri}"
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _shown(uri: str, name: str) -> str:
    return uri if uri.rstrip("/").endswith("/" + name) else f"{uri.rstrip('/')}/{name}"


def input_uris(step_type: str, arguments: Mapping[str, Any]) -> Iterator[str]:
    if step_type == "Processing":
        for item in arguments.get("ProcessingInputs", []):
            yield item.get("S3Input", {}).get("S3Uri", "")
    elif step_type == "Training":
        for channel in arguments.get("InputDataConfig", []):
            yield channel["DataSource"]["S3DataSource"]["S3Uri"]
        submit = str(arguments.get("HyperParameters", {}).get("sagemaker_submit_directory", "")).strip('"')
        if submit.startswith("s3://"):
            yield submit


def output_uris(step_type: str, properties: Mapping[str, Any]) -> Iterator[str]:
    if step_type == "Processing":
        for item in properties.get("ProcessingOutputConfig", {}).get("Outputs", []):
            yield item["S3Output"]["S3Uri"]
    elif step_type == "Training":
        yield properties["ModelArtifacts"]["S3ModelArtifacts"]
