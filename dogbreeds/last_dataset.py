"""The last dataset uploaded to each environment: `dataset upload` records it, `pipeline start` reads it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

# Where the last upload's DatasetS3Uri is kept per environment (`pipeline start` reads it).
LOCAL_STATE_DIR = Path(".local")
LAST_DATASET_FILE = "last-dataset.json"


def record_last_dataset(env_name: str, uri: str, state_dir: Path = LOCAL_STATE_DIR) -> None:
    """Remember the environment's last uploaded dataset, for `dogbreeds pipeline start`."""
    path = state_dir / LAST_DATASET_FILE
    try:
        recorded = json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        recorded = {}
    recorded[env_name] = uri
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(recorded, indent=2) + "\n")
    except OSError as error:  # the upload itself succeeded; only the shortcut is lost
        print(f"note: could not record the dataset in {path} ({error})", file=sys.stderr)


def last_uploaded_dataset(env_name: str, state_dir: Path | None = None) -> str | None:
    """The DatasetS3Uri the last `dataset upload` to the environment printed, or None."""
    path = (state_dir or LOCAL_STATE_DIR) / LAST_DATASET_FILE
    try:
        return json.loads(path.read_text()).get(env_name)
    except (OSError, ValueError, AttributeError):
        return None
