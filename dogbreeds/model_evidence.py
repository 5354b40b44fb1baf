"""What an operator weighs before approving a model version: its evaluation metrics (from the
evaluation.json its ModelMetrics name), the threshold it passed, and how it compares with the live one.

Shared by `dogbreeds models list|show` (AWS) and `dogbreeds local models list|show`; a missing or
unreadable number is printed as "n/a", never an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# evaluation.json's multiclass_classification_metrics keys (pipeline_code/container/evaluate.py).
METRIC_KEYS = ("accuracy", "top_5_accuracy", "macro_f1")
METRIC_LABELS = {"accuracy": "ACCURACY", "top_5_accuracy": "TOP5", "macro_f1": "F1"}
EVALUATION_KEY = "ModelQuality.Statistics"  # the flattened ModelMetrics slot evaluation.json is in
NA = "n/a"


def flatten_s3_uris(section: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"ModelQuality": {"Statistics": {"S3Uri": u}}}`` -> ``{"ModelQuality.Statistics": u}``: the
    files a package's ModelMetrics or DriftCheckBaselines name, by their slot."""
    flat: dict[str, str] = {}
    for key, value in section.items():
        if isinstance(value, Mapping):
            if isinstance(value.get("S3Uri"), str):
                flat[prefix + key] = value["S3Uri"]
            else:
                flat.update(flatten_s3_uris(value, prefix + key + "."))
    return flat


def metrics_of(evaluation: Mapping[str, Any] | None) -> dict[str, float | None]:
    """accuracy, top-5 (top-k when fewer than 5 classes) and macro F1; None where absent."""
    section = (evaluation or {}).get("multiclass_classification_metrics") or {}
    if not isinstance(section, Mapping):
        section = {}
    metrics: dict[str, float | None] = {}
    for key in METRIC_KEYS:
        entry = section.get(key)
        if entry is None and key == "top_5_accuracy":
            # evaluate.py writes top_<k>_accuracy with k = min(5, classes).
            top_k = [v for k, v in section.items() if k.startswith("top_") and k.endswith("_accuracy")]
            entry = top_k[0] if top_k else None
        value = entry.get("value") if isinstance(entry, Mapping) else entry
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        metrics[key] = float(value) if numeric else None
    return metrics


def number(value: float | None) -> str:
    return NA if value is None else f"{value:.4f}"


def delta(value: float | None, live: float | None) -> str:
    return NA if value is None or live is None else f"{value - live:+.4f}"


def metric_columns(metrics: Mapping[str, float | None]) -> str:
    return "  ".join(f"{number(metrics.get(key)):>8}" for key in METRIC_KEYS)


def metric_header() -> str:
    return "  ".join(f"{METRIC_LABELS[key]:>8}" for key in METRIC_KEYS)


def comparison_lines(
    metrics: Mapping[str, float | None], live: Mapping[str, float | None] | None, live_label: str | None
) -> list[str]:
    """`accuracy  0.8123  (live v2: 0.7900, +0.0223)` per metric."""
    lines = []
    for key in METRIC_KEYS:
        line = f"  {key:<16} {number(metrics.get(key))}"
        if live is not None and live_label:
            line += f"  ({live_label}: {number(live.get(key))}, {delta(metrics.get(key), live.get(key))})"
        lines.append(line)
    return lines


def newer_marker(version: int, live: int | None, status: str) -> str:
    """`live`, `newer than live`, or nothing."""
    if live is not None and version == live:
        return "live"
    if status != "Rejected" and (live is None or version > live):
        return "newer than live" if live is not None else ""
    return ""
