"""Which AWS account hosts the PyTorch deep learning container images in each region.

The sagemaker SDK ships this table; reading it at synth (offline, deterministic) lets the execution
role pull exactly those repositories instead of any ECR repository in any account.
"""

from __future__ import annotations

import importlib.util
import json
from functools import cache
from pathlib import Path

DLC_REPOSITORIES = ("pytorch-training", "pytorch-inference")


@cache
def pytorch_registry_accounts() -> dict[str, str]:
    """Region -> account id of AWS's PyTorch DLC registry, from the SDK's bundled image config."""
    # find_spec locates the package without importing it (importing sagemaker costs seconds).
    spec = importlib.util.find_spec("sagemaker")
    if spec is None or spec.origin is None:
        raise RuntimeError("the sagemaker package is not installed; run `make setup`")
    config_path = Path(spec.origin).parent / "image_uri_config" / "pytorch.json"
    config = json.loads(config_path.read_text())
    accounts: dict[str, str] = {}
    for scope in ("training", "inference"):
        versions = config[scope]["versions"]
        # Newest first: early 1.x images lived in other accounts than today's DLC registries.
        for key in sorted(versions, key=_version_key, reverse=True):
            for region, account in versions[key].get("registries", {}).items():
                accounts.setdefault(region, account)
    return dict(sorted(accounts.items()))


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else 0 for part in version.split("."))
