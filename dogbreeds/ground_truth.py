"""`dogbreeds ground-truth`: turn a traffic record into SageMaker-format ground truth.

    dogbreeds ground-truth --records FILE --out s3://BUCKET/ground-truth/ENDPOINT|DIR
                           [--wrong-fraction F] [--seed S] [--time ISO]

Each successful request of ``dogbreeds traffic --record FILE`` that had a true label becomes one
``{"groundTruthData": {"data": "<label>", "encoding": "CSV"}, "eventMetadata": {"eventId":
"<inference id>"}, "eventVersion": "0"}`` line in ``<out>/yyyy/mm/dd/hh/groundtruth-<uuid>.jsonl``
(the hour of ``--time``, default now, UTC), the layout the model-quality monitor reads.
``--wrong-fraction`` replaces that share of the labels by another breed, to rehearse a quality
drop (the monitor then sees the model as that much worse).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from pipeline_code.container.dogbreeds_jobs.monitoring import ground_truth_format, monitor_io, monitor_window


def read_records(path: Path) -> list[dict[str, Any]]:
    """Successful, labelled requests of a traffic record file; a bad line is an error naming it."""
    if not Path(path).is_file():
        raise ValueError(f"--records {path} does not exist")
    records = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{number} is not JSON: {error}") from error
        if not isinstance(entry, dict) or "inference_id" not in entry:
            raise ValueError(
                f"{path}:{number} has no inference_id (is it a `dogbreeds traffic --record` file?)"
            )
        if entry.get("status") == 200 and entry.get("true_label"):
            records.append(entry)
    return records


def write_ground_truth(
    records: list[dict[str, Any]],
    out: str,
    *,
    wrong_fraction: float = 0.0,
    seed: int = 0,
    when: datetime | None = None,
) -> dict[str, Any]:
    """Write one ground-truth file for ``records``; returns where and how many labels were wrong."""
    if not 0.0 <= wrong_fraction <= 1.0:
        raise ValueError(f"--wrong-fraction must be between 0 and 1, got {wrong_fraction}")
    if not records:
        raise ValueError("no successful, labelled requests in the records: nothing to label")
    labels = sorted(
        {r["true_label"] for r in records}
        | {r["predicted_breed"] for r in records if r.get("predicted_breed")}
    )
    if wrong_fraction and len(labels) < 2:
        raise ValueError("--wrong-fraction needs at least two distinct labels to swap between")
    rng = np.random.default_rng(seed)
    wrong = set(rng.choice(len(records), size=round(wrong_fraction * len(records)), replace=False).tolist())
    lines = []
    for index, entry in enumerate(records):
        label = entry["true_label"]
        if index in wrong:
            others = [name for name in labels if name != label]
            label = others[int(rng.integers(len(others)))]
        lines.append(ground_truth_format.GroundTruthRecord(entry["inference_id"], label).to_json_line())
    moment = (when or datetime.now(UTC)).astimezone(UTC)
    window = monitor_window.Window(moment, moment)
    location = monitor_io.join(
        monitor_window.dated_prefix(out, window), f"groundtruth-{moment:%M-%S}-{uuid.uuid4()}.jsonl"
    )
    monitor_io.write_bytes(location, "".join(lines).encode(), "application/x-ndjson")
    return {"written": len(lines), "wrong": len(wrong), "location": location}

