"""Local model registry: model package versions 1..n per group, in one JSON file under the workdir.

It stands in for the SageMaker Model Registry in local mode: the pipeline's RegisterModel step
adds a version (with its approval status, metrics and drift baselines), and an operator approves
or rejects it with `dogbreeds local models approve|reject [VERSION]`, as in the console.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import tempfile
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dogbreeds.model_evidence import flatten_s3_uris

APPROVAL_STATUSES = ("PendingManualApproval", "Approved", "Rejected")
REGISTRY_FILE = "model_registry.json"
DEFAULT_WORKDIR = ".local"
TEMP_PREFIX = ".registry-"


class RegistryError(Exception):
    """A registry request names an unknown group or version, or an invalid status."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class LocalModelRegistry:
    """Model packages in `<workdir>/model_registry.json`; every change is locked and atomic."""

    def __init__(self, workdir: Path | str) -> None:
        self.workdir = Path(workdir)
        self.path = self.workdir / REGISTRY_FILE

    # -- reading -------------------------------------------------------------------------------
    def packages(self, group: str | None = None) -> list[dict[str, Any]]:
        """All versions (of one group, if given), oldest first."""
        return [p for p in self._load()["packages"] if group is None or p["group"] == group]

    def groups(self) -> list[str]:
        return sorted({p["group"] for p in self._load()["packages"]})

    def get(self, version: int, group: str | None = None) -> dict[str, Any]:
        group = self._only_group(group)
        for package in self.packages(group):
            if package["version"] == version:
                return package
        known = ", ".join(str(p["version"]) for p in self.packages(group)) or "none"
        raise RegistryError(f"model package group {group!r} has no version {version}; versions: {known}")

    def latest(self, group: str | None = None, status: str | None = None) -> dict[str, Any] | None:
        """The newest version (with `status`, if given), or None."""
        group = self._only_group(group)
        matching = [p for p in self.packages(group) if status is None or p["approval_status"] == status]
        return matching[-1] if matching else None

    # -- writing -------------------------------------------------------------------------------
    def register(
        self,
        *,
        group: str,
        model_data_url: str,
        approval_status: str = "PendingManualApproval",
        model_metrics: Mapping[str, Any] | None = None,
        drift_check_baselines: Mapping[str, Any] | None = None,
        inference_specification: Mapping[str, Any] | None = None,
        customer_metadata_properties: Mapping[str, str] | None = None,
        source: Mapping[str, Any] | None = None,
        description: str = "",
    ) -> dict[str, Any]:
        """Add the next version of `group` and return it."""
        _check_status(approval_status)
        if not group:
            raise RegistryError("a model package group name is required")
        with self._locked() as document:
            versions = [p["version"] for p in document["packages"] if p["group"] == group]
            version = max(versions, default=0) + 1
            now = _now()
            package = {
                "group": group,
                "version": version,
                "arn": f"arn:aws:sagemaker:local:000000000000:model-package/{group}/{version}",
                "approval_status": approval_status,
                "model_data_url": model_data_url,
                "metrics_uris": flatten_s3_uris(model_metrics or {}),
                "baseline_uris": flatten_s3_uris(drift_check_baselines or {}),
                "model_metrics": dict(model_metrics or {}),
                "drift_check_baselines": dict(drift_check_baselines or {}),
                "inference_specification": dict(inference_specification or {}),
                "customer_metadata_properties": dict(customer_metadata_properties or {}),
                "description": description,
                "source": dict(source or {}),
                "created_at": now,
                "updated_at": now,
                "status_history": [{"status": approval_status, "at": now}],
            }
            document["packages"].append(package)
        return package

    def set_status(
        self, version: int | None, status: str, group: str | None = None, reason: str = ""
    ) -> dict[str, Any]:
        """Approve or reject a version (the newest one when `version` is None)."""
        _check_status(status)
        group = self._only_group(group)
        with self._locked() as document:
            candidates = [p for p in document["packages"] if p["group"] == group]
            if not candidates:
                raise RegistryError(f"model package group {group!r} has no versions")
            if version is None:
                package = candidates[-1]
            else:
                matches = [p for p in candidates if p["version"] == version]
                if not matches:
                    known = ", ".join(str(p["version"]) for p in candidates)
                    raise RegistryError(
                        f"model package group {group!r} has no version {version}; versions: {known}"
                    )
                package = matches[0]
            now = _now()
            package["approval_status"] = status
            package["updated_at"] = now
            package["status_history"].append(
                {"status": status, "at": now, **({"reason": reason} if reason else {})}
            )
        return package

    # -- storage -------------------------------------------------------------------------------
    def _only_group(self, group: str | None) -> str:
        if group is not None:
            return group
        groups = self.groups()
        if len(groups) == 1:
            return groups[0]
        if not groups:
            raise RegistryError(f"the local model registry ({self.path}) has no model packages yet")
        raise RegistryError(f"the registry holds several groups; name one with --group: {', '.join(groups)}")

    def _load(self) -> dict[str, Any]:
        if not self.path.is_file():
            return {"packages": []}
        try:
            document = json.loads(self.path.read_text())
        except ValueError as error:
            raise RegistryError(f"{self.path} is not valid JSON ({error}); fix or remove it") from None
        if not isinstance(document, dict) or not isinstance(document.get("packages"), list):
            raise RegistryError(f"{self.path} does not look like a local model registry (no 'packages' list)")
        return document

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        # A pipeline run and an operator's approve can overlap; the lock keeps both changes.
        self.workdir.mkdir(parents=True, exist_ok=True)
        with (self.workdir / (REGISTRY_FILE + ".lock")).open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            locked_at = time.time()
            document = self._load()
            yield document
            self._remove_stale_temporaries(before=locked_at)
            mode = _mode_to_keep(self.path)
            handle, temporary = tempfile.mkstemp(dir=self.workdir, prefix=TEMP_PREFIX, suffix=".json")
            try:
                with os.fdopen(handle, "w") as out:
                    os.fchmod(out.fileno(), mode)  # mkstemp makes it 0600
                    json.dump(document, out, indent=2)
                os.replace(temporary, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
                raise

    def _remove_stale_temporaries(self, before: float) -> None:
        # Every writer holds the lock from before its temp file exists until the rename, so a temp
        # file older than our lock belongs to a writer that died (a kill -9 between the two).
        for leftover in self.workdir.glob(TEMP_PREFIX + "*.json"):
            with contextlib.suppress(OSError):
                if leftover.stat().st_mtime < before:
                    leftover.unlink()


def _mode_to_keep(path: Path) -> int:
    """The registry file's own mode, or 0666 less the umask for a new one (as open() would)."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _check_status(status: str) -> None:
    if status not in APPROVAL_STATUSES:
        raise RegistryError(
            f"approval status {status!r} is not valid; use one of {', '.join(APPROVAL_STATUSES)}"
        )


# -- the evidence behind an approval ----------------------------------------------------------
def evaluation_of(package: Mapping[str, Any], workdir: Path | str) -> dict[str, Any] | None:
    """The version's evaluation.json (its ModelMetrics ModelQuality.Statistics) from the local S3
    folder, or None when it names none or the file is missing or unreadable."""
    from dogbreeds.local_executor.executor import local_s3_root
    from dogbreeds.local_executor.s3_mapping import LocalS3, S3MappingError
    from dogbreeds.model_evidence import EVALUATION_KEY

    uri = (package.get("metrics_uris") or {}).get(EVALUATION_KEY)
    if not uri:
        return None
    try:
        document = LocalS3(local_s3_root(workdir)).read_json(uri)
    except (OSError, ValueError, S3MappingError):
        return None
    return document if isinstance(document, dict) else None


def execution_of(package: Mapping[str, Any], workdir: Path | str) -> dict[str, Any] | None:
    """The execution.json of the pipeline execution that registered the version, if it is still there."""
    execution_id = (package.get("source") or {}).get("pipeline_execution_id")
    if not execution_id:
        return None
    path = Path(workdir) / "executions" / str(execution_id) / "execution.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def live_package(registry: LocalModelRegistry, group: str) -> dict[str, Any] | None:
    """Local mode has no endpoint that outlives `local serve`: the newest Approved version is live."""
    return registry.latest(group, "Approved")


def serve_location(package: Mapping[str, Any], workdir: Path | str) -> str:
    """How `local serve` takes this version: `--version N`, and the model archive's local path."""
    from dogbreeds.local_executor.executor import local_s3_root
    from dogbreeds.local_executor.s3_mapping import LocalS3, S3MappingError

    url = package.get("model_data_url", "")
    try:
        path = str(LocalS3(local_s3_root(workdir)).path_for(url))
    except S3MappingError:
        path = url
    return f"--version {package['version']}  {path}"


def metrics_of_package(package: Mapping[str, Any], workdir: Path | str) -> dict[str, float | None]:
    from dogbreeds.model_evidence import metrics_of

    return metrics_of(evaluation_of(package, workdir))
