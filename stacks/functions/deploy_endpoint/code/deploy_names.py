"""Names of the models and endpoint configs the Lambda creates, and reading them back.

``<prefix>-v<package version>-<8 hex digest>``: the version says which model package is live just
from DescribeEndpoint, and the digest covers everything that shapes the deployment (package, image,
artifact, settings), so a changed setting makes a new config while a duplicate event maps to the
config already live. `dogbreeds models list` reads the live version with the same pattern.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

DIGEST_LENGTH = 8
# SageMaker model and endpoint-config names: at most 63 characters.
MAX_NAME_LENGTH = 63


def deployment_digest(parts: Mapping[str, Any]) -> str:
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:DIGEST_LENGTH]


def versioned_name(prefix: str, version: int, digest: str) -> str:
    name = f"{prefix}-v{version}-{digest}"
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"{name!r} exceeds SageMaker's {MAX_NAME_LENGTH}-character limit")
    return name


def parse_version(prefix: str, name: str) -> int | None:
    """The package version in a name this Lambda created, or None for any other name."""
    match = re.fullmatch(rf"{re.escape(prefix)}-v([0-9]+)-([0-9a-f]{{{DIGEST_LENGTH}}})", name)
    return int(match.group(1)) if match else None


def name_suffix(prefix: str, name: str) -> str | None:
    """``v<version>-<digest>``: shared by a config and the model it serves."""
    if parse_version(prefix, name) is None:
        return None
    return name[len(prefix) + 1 :]
