"""The model-quality page's sections: headline metrics against baseline and threshold, per-breed
recall against the baseline's, and the most confused pairs of breeds.

A 133 x 133 confusion matrix is unreadable on a page; the pairs the model mixes up most, with
their counts and the share of the true breed's records, say the same where it matters (the full
matrix stays in statistics.json).
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from . import report_charts

CONFUSED_PAIRS = 10
# Per-breed recall chart: the breeds whose recall fell most are shown first, up to this many;
# the table below the chart lists every breed.
MAX_RECALL_BARS = 30


def sections(
    *,
    window_metrics: Mapping[str, Any],
    top_name: str,
    per_class: Mapping[str, Mapping[str, float]],
    baseline_statistics: Mapping[str, Any],
    constraints: Mapping[str, Any],
    accuracy_threshold: float,
    tolerance: float,
) -> list[str]:
    """Every model-quality section, in reading order."""
    if not window_metrics:
        return ["<h2>Metrics</h2><p>No labelled records in the window: nothing to measure.</p>"]
    baseline = baseline_statistics.get("multiclass_classification_metrics", {})
    return [
        metrics_section(window_metrics, baseline, constraints, top_name, accuracy_threshold, tolerance),
        recall_section(per_class, baseline_statistics.get("per_class_metrics")),
        confused_pairs_section(window_metrics.get("confusion_matrix", {})),
    ]


def _value(metrics: Mapping[str, Any], name: str) -> float | None:
    entry = metrics.get(name)
    return float(entry["value"]) if isinstance(entry, Mapping) and "value" in entry else None


def _thresholds(
    name: str, constraints: Mapping[str, Any], accuracy_threshold: float, tolerance: float
) -> list[tuple[float, str]]:
    """The limits a metric is checked against, as the monitor checks them: the baseline
    constraint less the tolerance, and for accuracy the environment's threshold."""
    limits = []
    rule = (constraints.get("multiclass_classification_constraints") or {}).get(name)
    if rule and rule.get("comparison_operator", "LessThanThreshold") == "LessThanThreshold":
        limits.append((float(rule["threshold"]) - tolerance, f"baseline constraint - {tolerance:g}"))
    if name == "accuracy":
        limits.append((accuracy_threshold, "environment's accuracy threshold"))
    return limits


def metrics_section(
    window: Mapping[str, Any],
    baseline: Mapping[str, Any],
    constraints: Mapping[str, Any],
    top_name: str,
    accuracy_threshold: float,
    tolerance: float,
) -> str:
    shown = (("accuracy", "accuracy"), (top_name, top_name.replace("_", " ")), ("macro_f1", "macro F1"))
    rows, bars = [], []
    for name, label in shown:
        value, base = _value(window, name), _value(baseline, name)
        limits = _thresholds(name, constraints, accuracy_threshold, tolerance)
        effective = max((limit for limit, _ in limits), default=None)
        below = value is not None and effective is not None and value < effective
        status = '<strong class="bad">below threshold</strong>' if below else ("ok" if limits else "")
        limit_text = "; ".join(f"{report_charts.number(v)} ({why})" for v, why in limits) or "none"
        change = None if value is None or base is None else value - base
        rows.append(
            f"<tr><td>{html.escape(label)}</td><td class=num>{report_charts.number(value)}</td>"
            f"<td class=num>{report_charts.number(base)}</td>"
            f"<td class=num>{'' if change is None else f'{change:+.4f}'}</td>"
            f"<td>{html.escape(limit_text)}</td><td>{status}</td></tr>"
        )
        bars.append((label, value, base, effective))
    key = report_charts.legend(
        (report_charts.WINDOW_COLOUR, "window"),
        ("#222", "baseline"),
        (report_charts.THRESHOLD_COLOUR, "threshold (dashed)"),
    )
    return (
        "<h2>Metrics</h2><table><tr><th>metric</th><th>window</th><th>baseline</th><th>change</th>"
        f"<th>threshold</th><th></th></tr>{''.join(rows)}</table>{key}"
        f"{report_charts.bullet_svg(bars, 'window metrics against baseline and threshold')}"
    )


def recall_section(
    per_class: Mapping[str, Mapping[str, float]], baseline: Mapping[str, Mapping[str, float]] | None
) -> str:
    """Recall per breed in the window next to the baseline's; the largest drops first."""
    baseline = baseline or {}

    def base(name: str) -> float | None:
        entry = baseline.get(name)
        return float(entry["recall"]) if entry else None

    judged = [n for n, v in per_class.items() if v.get("support", 0) > 0]
    order = sorted(judged, key=lambda n: ((per_class[n]["recall"] - (base(n) or 0.0)), n))
    chart_rows = [(n, base(n), per_class[n]["recall"]) for n in order[:MAX_RECALL_BARS]]
    note = "" if baseline else '<p class="note">the baseline has no per-breed recall (an older model)</p>'
    if len(order) > len(chart_rows):
        note += (
            f'<p class="note">the {len(chart_rows)} of {len(order)} breeds whose recall fell most; '
            "the table lists every breed</p>"
        )
    table = "".join(
        f"<tr><td>{html.escape(n)}</td><td class=num>{report_charts.number(per_class[n]['recall'])}</td>"
        f"<td class=num>{report_charts.number(base(n))}</td>"
        f"<td class=num>{report_charts.number(per_class[n]['support'])}</td></tr>"
        for n in sorted(judged)
    )
    key = report_charts.legend(
        (report_charts.BASELINE_COLOUR, "baseline recall"), (report_charts.WINDOW_COLOUR, "window recall")
    )
    chart = report_charts.hbar_svg(chart_rows, "recall per breed, window and baseline", scale_max=1.0)
    return (
        f"<h2>Recall per breed</h2>{note}{key}{chart}"
        f"<details><summary>all {len(judged)} breeds with labelled records</summary>"
        "<table><tr><th>breed</th><th>window recall</th><th>baseline recall</th>"
        f"<th>labelled records</th></tr>{table}</table></details>"
    )


def confused_pairs(confusion: Mapping[str, Mapping[str, int]], top: int = CONFUSED_PAIRS) -> list[dict]:
    """The ``top`` largest off-diagonal cells: true breed, predicted breed, count, and the count's
    share of the true breed's records."""
    pairs = []
    for true, row in confusion.items():
        total = sum(row.values())
        for predicted, count in row.items():
            if predicted != true and count:
                pairs.append({"true": true, "predicted": predicted, "count": count, "share": count / total})
    pairs.sort(key=lambda p: (-p["count"], p["true"], p["predicted"]))
    return pairs[:top]


def confused_pairs_section(confusion: Mapping[str, Mapping[str, int]]) -> str:
    pairs = confused_pairs(confusion)
    if not pairs:
        return "<h2>Most confused breeds</h2><p>No wrong predictions among the labelled records.</p>"
    rows = "".join(
        f"<tr><td>{html.escape(p['true'])}</td><td>{html.escape(p['predicted'])}</td>"
        f"<td class=num>{p['count']}</td><td class=num>{report_charts.percent(p['share'])}</td></tr>"
        for p in pairs
    )
    return (
        f"<h2>Most confused breeds</h2><p class=note>the {len(pairs)} most frequent mistakes; the full "
        "confusion matrix is in statistics.json</p><table><tr><th>true breed</th><th>predicted as</th>"
        f"<th>records</th><th>share of the true breed's records</th></tr>{rows}</table>"
    )
