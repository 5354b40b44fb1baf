"""Promotion gates: whether a version behaved in its source environment well enough to move on.

The gates judge evidence the source collected while the version served its endpoint; where that
evidence comes from (AWS: the endpoint chain, CloudWatch alarm history and metrics; local mode: the
local registry and ``<workdir>/monitoring``) is the caller's business, so AWS and local promotion
share these rules:

* ``live``: the source's endpoint serves the version now.
* ``live_for``: it has served it for at least ``promotion.min_hours_live`` hours.
* ``alarms``: none of the source's gate alarms (the endpoint's rollback alarms and every monitoring
  alarm) was in ALARM at any time since it went live: not when it went live, not after, not now.
* ``live_accuracy``: the model-quality monitor's accuracy against ground truth, weighted by the
  labelled records of each judged window since it went live, is at or above the target's
  ``monitoring.accuracy_threshold``; with fewer than ``min_labelled_records`` labelled records it
  is not judged (and fails only with ``require_labels``).

Also here: how a promoted version's objects are laid out in the target bucket, and the lineage
metadata it carries.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from contract.settings import PromotionSettings
from dogbreeds.model_evidence import flatten_s3_uris

ALARM = "ALARM"
HOUR = 3600

# CustomerMetadataProperties keys the promotion writes (and reads back, for idempotency).
PROMOTED_FROM_ARN = "PromotedFromPackageArn"
LINEAGE_KEYS = (
    "PromotedFromEnvironment",
    PROMOTED_FROM_ARN,
    "PromotedFromVersion",
    "TrainingExecutionArn",
    "DatasetS3Uri",
    "PromotedBy",
    "PromotedAt",
    "PromotionReason",
    "PromotionGates",
    "PromotionGatesUri",
)
# The value pattern of CustomerMetadataProperties: letters, spaces, digits and _.:/=+-@, 256 long.
_METADATA_MAX = 256


class PromotionError(Exception):
    """A promotion that cannot go ahead for a reason the operator can fix (exit status 2)."""


@dataclass(frozen=True)
class AccuracyPoint:
    """One judged monitoring window (or hour): its accuracy and how many labelled records."""

    at: datetime
    accuracy: float
    labelled: float


@dataclass
class Evidence:
    """What the source recorded about the version, as the gates read it."""

    environment: str
    version: int
    now: datetime
    live_version: int | None
    live_since: datetime | None
    live_since_from: str  # where live_since was read
    alarm_names: Sequence[str]
    # DescribeAlarmHistory StateUpdate items of those alarms (any time), and current states.
    alarm_history: Sequence[Mapping[str, Any]]
    current_states: Mapping[str, str]
    accuracy: Sequence[AccuracyPoint] = field(default_factory=list)
    accuracy_from: str = ""


@dataclass
class Gate:
    name: str
    passed: bool
    evidence: str
    judged: bool = True


def evaluate_gates(evidence: Evidence, promotion: PromotionSettings, accuracy_threshold: float) -> list[Gate]:
    start = window_start(evidence, promotion)
    gates = [_live(evidence), _live_for(evidence, promotion), _alarms(evidence, start)]
    if promotion.live_accuracy_gate:
        gates.append(_live_accuracy(evidence, promotion, accuracy_threshold))
    return gates


def _live(e: Evidence) -> Gate:
    if e.live_version == e.version:
        return Gate("live", True, f"{e.environment}'s endpoint serves version {e.version}")
    serving = "no version" if e.live_version is None else f"version {e.live_version}"
    return Gate("live", False, f"{e.environment}'s endpoint serves {serving}, not version {e.version}")


def _live_for(e: Evidence, promotion: PromotionSettings) -> Gate:
    if e.live_since is None or e.live_version != e.version:
        return Gate("live_for", False, f"version {e.version} is not live in {e.environment}")
    hours = (e.now - e.live_since).total_seconds() / HOUR
    text = (
        f"live since {_iso(e.live_since)} ({e.live_since_from}): {hours:.1f} h, "
        f"at least {promotion.min_hours_live} h required"
    )
    return Gate("live_for", hours >= promotion.min_hours_live, text)


def window_start(e: Evidence, promotion: PromotionSettings) -> datetime:
    """Since when the alarms and the accuracy count: since the version went live (or, when it is
    not live, the last min_hours_live hours, so the evidence printed still means something)."""
    if e.live_since is not None and e.live_version == e.version:
        return e.live_since
    return e.now - timedelta(hours=max(promotion.min_hours_live, 1))


def _alarms(e: Evidence, start: datetime) -> Gate:
    missing = [name for name in e.alarm_names if name not in e.current_states]
    breaches: list[str] = []
    for name in e.alarm_names:
        items = sorted(
            (i for i in e.alarm_history if i.get("AlarmName") == name and _is_state_update(i)),
            key=lambda i: _time(i["Timestamp"]),
        )
        before = [i for i in items if _time(i["Timestamp"]) <= start]
        if before and _new_state(before[-1]) == ALARM:
            breaches.append(
                f"{name} was in ALARM when the version went live (since {before[-1]['Timestamp']})"
            )
        for item in items:
            if _time(item["Timestamp"]) > start and _new_state(item) == ALARM:
                breaches.append(f"{name} went to ALARM at {_iso(_time(item['Timestamp']))}")
        if e.current_states.get(name) == ALARM and not any(b.startswith(name + " ") for b in breaches):
            breaches.append(f"{name} is in ALARM now")
    if missing:
        breaches.append(
            f"{len(missing)} alarm(s) not found in {e.environment} (stack not deployed?): "
            + ", ".join(missing)
        )
    if breaches:
        return Gate("alarms", False, "; ".join(breaches))
    return Gate(
        "alarms",
        True,
        f"none of {len(e.alarm_names)} alarms in ALARM since {_iso(start)} ({', '.join(e.alarm_names)})",
    )


def _live_accuracy(e: Evidence, promotion: PromotionSettings, threshold: float) -> Gate:
    start = window_start(e, promotion)
    points = [p for p in e.accuracy if p.at >= start - timedelta(seconds=HOUR) and p.at <= e.now]
    labelled = sum(p.labelled for p in points)
    if labelled < promotion.min_labelled_records or labelled <= 0:
        text = (
            f"{labelled:.0f} labelled records judged since {_iso(start)} ({e.accuracy_from}), fewer "
            f"than min_labelled_records {promotion.min_labelled_records}: "
            + ("required (require_labels)" if promotion.require_labels else "not judged")
        )
        return Gate("live_accuracy", not promotion.require_labels, text, judged=False)
    accuracy = sum(p.accuracy * p.labelled for p in points) / labelled
    text = (
        f"accuracy {accuracy:.3f} on {labelled:.0f} labelled records in {len(points)} judged "
        f"window(s) since {_iso(start)} ({e.accuracy_from}); threshold {threshold}"
    )
    return Gate("live_accuracy", accuracy >= threshold, text)


def accuracy_points(
    accuracy: Iterable[tuple[datetime, float]], labelled: Iterable[tuple[datetime, float]]
) -> list[AccuracyPoint]:
    """Pair Accuracy and LabelledRecords by hour: the accuracy averaged, the labels summed. Only
    hours with an accuracy count (a window too small to judge publishes no accuracy)."""
    by_hour: dict[int, list[float]] = {}
    for at, value in accuracy:
        by_hour.setdefault(int(at.timestamp()) // HOUR, []).append(value)
    counts: dict[int, float] = {}
    for at, value in labelled:
        hour = int(at.timestamp()) // HOUR
        counts[hour] = counts.get(hour, 0.0) + value
    return [
        AccuracyPoint(
            datetime.fromtimestamp(hour * HOUR, tz=UTC), sum(values) / len(values), counts.get(hour, 0.0)
        )
        for hour, values in sorted(by_hour.items())
    ]


def print_gates(gates: Sequence[Gate], out: Any = None) -> None:
    import sys

    out = out or sys.stdout
    for gate in gates:
        mark = "pass" if gate.passed else "FAIL"
        print(f"  {mark:<4}  {gate.name:<14} {gate.evidence}", file=out)


def gates_document(
    gates: Sequence[Gate],
    *,
    evidence: Evidence,
    forced: bool,
    reason: str,
    promoted_by: str,
    source_arn: str,
    copies: Mapping[str, str],
) -> dict[str, Any]:
    return {
        "source_environment": evidence.environment,
        "source_version": evidence.version,
        "source_package_arn": source_arn,
        "evaluated_at": _iso(evidence.now),
        "live_since": _iso(evidence.live_since) if evidence.live_since else None,
        "live_since_from": evidence.live_since_from,
        "gates": [asdict(g) for g in gates],
        "passed": all(g.passed for g in gates),
        "forced": forced,
        "reason": reason,
        "promoted_by": promoted_by,
        "copies": dict(copies),
    }


def gate_summary(gates: Sequence[Gate], forced: bool) -> str:
    failed = [g.name for g in gates if not g.passed]
    if not failed:
        return "passed"
    return ("forced past " if forced else "failed ") + " ".join(failed)


# --- where the copies go ----------------------------------------------------------------------


def package_uris(package: Mapping[str, Any]) -> dict[str, str]:
    """Every S3 URI of a DescribeModelPackage answer, by a slot name that says what it is:
    ``model-0``, ``ModelMetrics.ModelQuality.Statistics``, ``DriftCheckBaselines....``,
    ``CustomerMetadataProperties.<key>`` (only values that are s3:// URIs)."""
    uris: dict[str, str] = {}
    containers = (package.get("InferenceSpecification") or {}).get("Containers") or []
    for index, container in enumerate(containers):
        if container.get("ModelDataUrl"):
            uris[f"model-{index}"] = container["ModelDataUrl"]
    for section in ("ModelMetrics", "DriftCheckBaselines"):
        for name, uri in flatten_s3_uris(package.get(section) or {}, section + ".").items():
            uris[name] = uri
    for key, value in (package.get("CustomerMetadataProperties") or {}).items():
        if isinstance(value, str) and value.startswith("s3://") and key not in LINEAGE_KEYS:
            uris[f"CustomerMetadataProperties.{key}"] = value
    return uris


def copy_plan(uris: Mapping[str, str], target_bucket: str, target_prefix: str) -> dict[str, str]:
    """Source URI -> target URI, once per distinct source URI (a prefix URI, ending in '/', maps
    to a prefix): ``s3://<target>/<promoted prefix>/<slot>/<file name>``."""
    plan: dict[str, str] = {}
    for slot, uri in uris.items():
        if uri in plan:
            continue
        name = "" if uri.endswith("/") else uri.rstrip("/").rsplit("/", 1)[-1]
        plan[uri] = f"s3://{target_bucket}/{target_prefix}/{slot}/{name}"
    return plan


def rewrite_uris(value: Any, plan: Mapping[str, str]) -> Any:
    """``value`` with every string that is a planned source URI replaced by its copy."""
    if isinstance(value, str):
        return plan.get(value, value)
    if isinstance(value, list):
        return [rewrite_uris(v, plan) for v in value]
    if isinstance(value, Mapping):
        return {k: rewrite_uris(v, plan) for k, v in value.items()}
    return value


def split_s3(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise PromotionError(f"{uri!r} is not an s3:// URI")
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


def metadata_value(text: str) -> str:
    """``text`` as a CustomerMetadataProperties value: characters the API refuses become spaces,
    and it is cut to 256 characters."""
    cleaned = "".join(ch if ch.isalnum() or ch.isspace() or ch in "_.:/=+-@" else " " for ch in text)
    return re.sub(r"\s+", " ", cleaned).strip()[:_METADATA_MAX] or "-"


def client_token(source_arn: str, target_group: str) -> str:
    """CreateModelPackage's idempotency token for one source version into one group."""
    import hashlib

    return hashlib.sha256(f"{source_arn}\n{target_group}".encode()).hexdigest()[:32]


def _is_state_update(item: Mapping[str, Any]) -> bool:
    return item.get("HistoryItemType", "StateUpdate") == "StateUpdate"


def _new_state(item: Mapping[str, Any]) -> str:
    try:
        return json.loads(item.get("HistoryData") or "{}")["newState"]["stateValue"]
    except (ValueError, KeyError, TypeError):
        summary = str(item.get("HistorySummary", ""))
        return summary.rsplit(" to ", 1)[-1].strip() if " to " in summary else ""


def _time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_time(value: Any) -> datetime:
    return _time(value)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso(moment: datetime) -> str:
    return _iso(moment)
