"""Step caching: a step with CacheConfig enabled is skipped when an earlier run did the same work.

"The same work" is SageMaker's rule (same step type and resolved arguments) plus a fingerprint of
the input files, because locally a folder can change under an unchanged URI. Execution variables
are masked out of the key (the SDK puts the execution id in default output paths), and, as on
SageMaker, a cache hit hands the earlier run's output locations to the steps that follow.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterator, Mapping
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
    """Cache entries as JSON files under `<workdir>/cache/`, one per key."""

    def __init__(self, folder: Path, local_s3: LocalS3) -> None:
        self.folder = Path(folder)
        self.local_s3 = local_s3

    def key(self, step_type: str, arguments: Mapping[str, Any]) -> str:
        """`arguments` resolved with execution variables masked (the caller does that)."""
        masked = json.dumps(arguments, sort_keys=True)
        fingerprint = [self._fingerprint(uri) for uri in sorted(set(input_uris(step_type, arguments)))]
        payload = json.dumps([step_type, masked, fingerprint])
        return hashlib.sha256(payload.encode()).hexdigest()

    def lookup(self, key: str, expire_after: str | None) -> dict[str, Any] | None:
        """The properties an earlier run produced, if still fresh and its outputs still exist."""
        path = self.folder / f"{key}.json"
        if not path.is_file():
            return None
        entry = json.loads(path.read_text())
        limit = expire_seconds(expire_after)
        if limit is not None and time.time() - entry["created"] > limit:
            return None
        if not all(self.local_s3.path_for(uri).exists() for uri in entry["output_uris"]):
            return None
        return entry

    def store(self, key: str, step_type: str, execution_id: str, properties: Mapping[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        entry = {
            "created": time.time(),
            "execution_id": execution_id,
            "properties": properties,
            "output_uris": list(output_uris(step_type, properties)),
        }
        (self.folder / f"{key}.json").write_text(json.dumps(entry, indent=2))

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
