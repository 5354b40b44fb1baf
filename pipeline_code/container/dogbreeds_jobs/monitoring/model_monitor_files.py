"""Model Monitor's report file shapes (statistics.json, constraints.json) built from plain data.

AWS closed Model Monitor to new customers, so this project's own jobs compute the reports; they
keep Model Monitor's field names so anyone who knows Model Monitor can read them, and so the
model package's ModelQuality / DriftCheck baselines point at familiar files.

* Model quality (multiclass): ``multiclass_classification_metrics`` with ``{"value",
  "standard_deviation"}`` per metric and ``confusion_matrix[true][predicted]``; constraints
  ``multiclass_classification_constraints`` with ``threshold`` + ``LessThanThreshold``.
* Data quality: ``features`` with ``numerical_statistics`` (``distribution.kll``) or
  ``string_statistics`` (``distribution.categorical``); constraints with ``completeness``,
  ``num_constraints`` / ``string_constraints.domains`` and ``monitoring_config``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from ..data import image_features

NAN = "NaN"  # how Model Monitor writes a missing standard deviation
# Model Monitor reports a standard deviation only from 200 samples up: the metric over five random
# 80% subsamples.
MIN_SAMPLES_FOR_STD = 200
SUBSAMPLES = 5
SUBSAMPLE_FRACTION = 0.8


def _safe_div(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def _f_beta(precision: float, recall: float, beta: float) -> float:
    b2 = beta * beta
    return _safe_div((1 + b2) * precision * recall, b2 * precision + recall)


def per_class_metrics(
    true_labels: Sequence[str], predicted_labels: Sequence[str], classes: Sequence[str]
) -> dict[str, dict[str, float]]:
    """precision, recall, f1 and support per class (support = number of true samples)."""
    pairs = Counter(zip(true_labels, predicted_labels, strict=True))
    true_counts = Counter(true_labels)
    predicted_counts = Counter(predicted_labels)
    result = {}
    for name in classes:
        hits = pairs.get((name, name), 0)
        precision = _safe_div(hits, predicted_counts.get(name, 0))
        recall = _safe_div(hits, true_counts.get(name, 0))
        result[name] = {
            "precision": precision,
            "recall": recall,
            "f1": _f_beta(precision, recall, 1.0),
            "support": true_counts.get(name, 0),
        }
    return result


def _point_metrics(true_labels: Sequence[str], predicted_labels: Sequence[str]) -> dict[str, float]:
    """Accuracy, weighted and macro precision/recall/F-scores, and the best constant classifier."""
    classes = sorted(set(true_labels) | set(predicted_labels))
    per_class = per_class_metrics(true_labels, predicted_labels, classes)
    total = len(true_labels)
    present = [c for c in classes if per_class[c]["support"] > 0]
    weights = {c: per_class[c]["support"] / total for c in classes}
    metrics = {"accuracy": _safe_div(sum(t == p for t, p in zip(true_labels, predicted_labels,
                                                                 strict=True)), total)}  # fmt: skip
    for name in ("precision", "recall"):
        metrics[f"weighted_{name}"] = sum(weights[c] * per_class[c][name] for c in classes)
        metrics[f"macro_{name}"] = _safe_div(sum(per_class[c][name] for c in present), len(present))
    for suffix, beta in (("f0_5", 0.5), ("f1", 1.0), ("f2", 2.0)):
        metrics[f"weighted_{suffix}"] = sum(
            weights[c] * _f_beta(per_class[c]["precision"], per_class[c]["recall"], beta)
            for c in classes
        )
    metrics["macro_f1"] = _safe_div(sum(per_class[c]["f1"] for c in present), len(present))
    # The best constant classifier always predicts the most frequent true class.
    _, majority_count = Counter(true_labels).most_common(1)[0]
    share = majority_count / total
    metrics["accuracy_best_constant_classifier"] = share
    metrics["weighted_recall_best_constant_classifier"] = share
    metrics["weighted_precision_best_constant_classifier"] = share * share
    for suffix, beta in (("f0_5", 0.5), ("f1", 1.0), ("f2", 2.0)):
        metrics[f"weighted_{suffix}_best_constant_classifier"] = share * _f_beta(share, 1.0, beta)
    return metrics


def multiclass_metrics(
    true_labels: Sequence[str],
    predicted_labels: Sequence[str],
    *,
    extra: dict[str, list[bool]] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """``multiclass_classification_metrics`` in Model Monitor's shape.

    ``extra`` adds per-sample boolean metrics averaged like accuracy (e.g. ``top_5_accuracy``).
    Standard deviations follow Model Monitor: five 80% subsamples, only from 200 samples up.
    """
    if not true_labels or len(true_labels) != len(predicted_labels):
        raise ValueError("need the same, non-zero number of true and predicted labels")
    extra = extra or {}
    point = _point_metrics(true_labels, predicted_labels)
    point.update({name: float(np.mean(values)) for name, values in extra.items()})
    spreads: dict[str, Any] = dict.fromkeys(point, NAN)
    count = len(true_labels)
    if count >= MIN_SAMPLES_FOR_STD:
        rng = np.random.default_rng(seed)
        samples: dict[str, list[float]] = {name: [] for name in point}
        for _ in range(SUBSAMPLES):
            index = rng.choice(count, size=int(count * SUBSAMPLE_FRACTION), replace=False)
            sub = _point_metrics([true_labels[i] for i in index],
                                 [predicted_labels[i] for i in index])  # fmt: skip
            sub.update({n: float(np.mean([v[i] for i in index])) for n, v in extra.items()})
            for name in point:
                samples[name].append(sub[name])
        spreads = {name: float(np.std(values)) for name, values in samples.items()}
    classes = sorted(set(true_labels) | set(predicted_labels))
    pairs = Counter(zip(true_labels, predicted_labels, strict=True))
    confusion = {t: {p: pairs.get((t, p), 0) for p in classes} for t in classes}
    metrics: dict[str, Any] = {"confusion_matrix": confusion}
    for name, value in point.items():
        metrics[name] = {"value": value, "standard_deviation": spreads[name]}
    return metrics


def model_quality_statistics(metrics: dict[str, Any], item_count: int) -> dict[str, Any]:
    """The model-quality ``statistics.json`` document."""
    return {
        "version": 0.0,
        "dataset": {"item_count": item_count, "evaluation_time": _now()},
        "multiclass_classification_metrics": metrics,
    }


def model_quality_constraints(
    metrics: dict[str, Any],
    names: Sequence[str] = (
        "accuracy", "weighted_recall", "weighted_precision", "weighted_f0_5", "weighted_f1",
        "weighted_f2",
    ),
) -> dict[str, Any]:  # fmt: skip
    """``constraints.json``: each baseline value is the threshold live quality must not fall below
    (what Model Monitor's suggest_baseline proposes; tighten or loosen it by editing the file)."""
    return {
        "version": 0.0,
        "multiclass_classification_constraints": {
            name: {"threshold": metrics[name]["value"], "comparison_operator": "LessThanThreshold"}
            for name in names
        },
    }


def numerical_feature_statistics(name: str, values: Sequence[float]) -> dict[str, Any]:
    """One Fractional feature, with the statistics the image-feature baseline uses (one writer)."""
    return {
        "name": name,
        "inferred_type": "Fractional",
        "numerical_statistics": image_features.numerical_statistics(values),
    }


def string_feature_statistics(name: str, values: Sequence[str]) -> dict[str, Any]:
    """One String feature with its categorical distribution."""
    return {
        "name": name,
        "inferred_type": "String",
        "string_statistics": image_features.string_statistics(values),
    }


def data_quality_statistics(features: list[dict[str, Any]], item_count: int) -> dict[str, Any]:
    return {"version": 0.0, "dataset": {"item_count": item_count}, "features": features}


def data_quality_constraints(
    features: list[dict[str, Any]],
    *,
    string_domains: dict[str, Sequence[str]] | None = None,
    comparison_threshold: float = 0.1,
) -> dict[str, Any]:
    """Constraints for the features: complete, non-negative numbers, strings from a domain."""
    string_domains = string_domains or {}
    constraints = []
    for feature in features:
        entry: dict[str, Any] = {
            "name": feature["name"],
            "inferred_type": feature["inferred_type"],
            "completeness": 1.0,
        }
        if feature["inferred_type"] == "Fractional":
            entry["num_constraints"] = {"is_non_negative": True}
        elif feature["name"] in string_domains:
            entry["string_constraints"] = {"domains": list(string_domains[feature["name"]])}
        constraints.append(entry)
    return {
        "version": 0.0,
        "features": constraints,
        "monitoring_config": {
            "evaluate_constraints": "Enabled",
            "emit_metrics": "Enabled",
            # Model Monitor's meaning: a violation when more than this share of values is of the
            # wrong type or outside the domain (1.0 could never be exceeded).
            "datatype_check_threshold": 0.1,
            "domain_content_threshold": 0.1,
            "distribution_constraints": {
                "perform_comparison": "Enabled",
                "comparison_threshold": comparison_threshold,
                "comparison_method": "Robust",
            },
        },
    }


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
