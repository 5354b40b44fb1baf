"""Reuse a rendered pipeline definition when nothing that shapes it has changed.

Rendering imports the sagemaker SDK and builds its sessions and steps: about 2 of the 8 seconds of
`cdk synth` on a 2-core machine, paid on every synth and in every test that builds an app. The
rendered text is a pure function of the builder's code, the sagemaker version, the Locations, the
settings and the names, so it is stored under a hash of all of them and reused; any change to any
of them (any .py under contract/ or pipeline_code/) renders afresh.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.metadata
import json
import os
import tempfile
from collections.abc import Iterable
from functools import cache
from pathlib import Path

from pydantic import BaseModel

from contract.naming import Names
from pipeline_code.locations import Locations

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = REPO_ROOT / ".cache" / "rendered-pipelines"
# Everything whose code can change a rendered definition.
SOURCE_FILES = tuple(
    sorted(path for folder in ("contract", "pipeline_code") for path in (REPO_ROOT / folder).rglob("*.py"))
)


@cache
def _sources_digest(files: Iterable[Path] = SOURCE_FILES) -> str:
    digest = hashlib.sha256()
    for path in files:
        if "__pycache__" in path.parts:
            continue
        digest.update(str(path.relative_to(REPO_ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def cache_key(builder: str, locations: Locations, settings: BaseModel, names: Names) -> str:
    inputs = {
        "builder": builder,
        "sagemaker": importlib.metadata.version("sagemaker"),
        "locations": dataclasses.asdict(locations),
        "settings": settings.model_dump(mode="json"),
        "names": dataclasses.asdict(names),
        "sources": _sources_digest(),
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def cached_render(
    builder: str, locations: Locations, settings: BaseModel, names: Names, cache_dir: Path = CACHE_DIR
) -> str:
    """``builder`` is ``"module:function"`` taking (locations, settings, names) and returning JSON.

    It is imported only on a miss, so a cache hit never imports the sagemaker SDK."""
    path = cache_dir / f"{cache_key(builder, locations, settings, names)}.json"
    try:
        text = path.read_text()
        json.loads(text)  # a damaged entry is rendered again, never used
        return text
    except (OSError, ValueError):
        pass
    module_name, function_name = builder.split(":")
    render = getattr(importlib.import_module(module_name), function_name)
    text = render(locations, settings, names)
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Write then rename: a reader never sees half a file, and parallel synths may race safely.
    handle, temporary = tempfile.mkstemp(dir=cache_dir, suffix=".tmp")
    with os.fdopen(handle, "w") as file:
        file.write(text)
    os.replace(temporary, path)
    return text
