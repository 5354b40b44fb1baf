"""SageMaker's ground-truth record: one label per captured inference, joined on its id.

    {"groundTruthData": {"data": "beagle", "encoding": "CSV"},
     "eventMetadata": {"eventId": "<inferenceId of the capture record, else its eventId>"},
     "eventVersion": "0"}

Files go under ``<ground-truth prefix>/yyyy/mm/dd/hh/*.jsonl`` (the hour they were labelled), the
same layout as capture, which is what Model Monitor's merge expects and what the model-quality
monitor reads. ``dogbreeds ground-truth`` writes them; the monitor parses them here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

ENCODINGS = ("CSV", "JSON")


class GroundTruthFormatError(ValueError):
    """A line is not a ground-truth record; the message names the source and line."""


@dataclass(frozen=True)
class GroundTruthRecord:
    event_id: str
    label: str

    def to_json_line(self) -> str:
        document = {
            "groundTruthData": {"data": self.label, "encoding": "CSV"},
            "eventMetadata": {"eventId": self.event_id},
            "eventVersion": "0",
        }
        return json.dumps(document, separators=(",", ":")) + "\n"


def _label_from(data: Any, encoding: str) -> str:
    if encoding == "CSV":
        # One label per record: the first CSV field (labellers sometimes add a trailing newline).
        return str(data).strip().split(",")[0].strip().strip('"')
    value = json.loads(data) if isinstance(data, str) else data
    if isinstance(value, dict):
        for key in ("label", "breed", "class"):
            if key in value:
                return str(value[key]).strip()
        raise GroundTruthFormatError(f"JSON ground truth {value!r} has no label, breed or class key")
    return str(value).strip()


def parse_ground_truth(
    line: str | bytes, *, source: str = "<stream>", line_number: int = 0
) -> GroundTruthRecord:
    """One JSONL line -> GroundTruthRecord, or GroundTruthFormatError saying what is wrong where."""
    where = f"{source}:{line_number}" if line_number else source
    try:
        document = json.loads(line)
        data = document["groundTruthData"]
        encoding = data.get("encoding", "CSV")
        if encoding not in ENCODINGS:
            raise GroundTruthFormatError(f"{where}: encoding {encoding!r}; expected one of {ENCODINGS}")
        label = _label_from(data["data"], encoding)
        event_id = str(document["eventMetadata"]["eventId"])
    except GroundTruthFormatError:
        raise
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as error:
        raise GroundTruthFormatError(f"{where}: not a ground-truth record ({error!r})") from error
    if not label or not event_id:
        raise GroundTruthFormatError(f"{where}: empty label or eventId")
    return GroundTruthRecord(event_id=event_id, label=label)
