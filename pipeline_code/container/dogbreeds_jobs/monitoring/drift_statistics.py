"""Streaming per-feature statistics of a monitoring window and their distance from a baseline.

Memory does not grow with the window: a numeric feature keeps running moments and counts in
fixed bins derived from the baseline, a categorical one a counter of distinct values. From those:

* PSI (population stability index) over the baseline's deciles:
  ``sum((w - b) * ln(w / b))``, shares floored at ``PSI_FLOOR`` so an empty bin is finite.
  Rule of thumb: < 0.1 stable, 0.1-0.2 moderate shift, > 0.2 significant.
* KS (Kolmogorov-Smirnov distance): the largest gap between the two cumulative distributions,
  evaluated at every value of the baseline's sketch (exact when the baseline kept all its
  values, i.e. up to 2,048 of them, which is what image_features writes).
* L-infinity distance for categorical features (Model Monitor's categorical drift method): the
  largest absolute difference between the two shares of any value.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

PSI_BINS = 10
PSI_FLOOR = 1e-4
# A categorical feature stops counting new values past this many (the rest go to OTHER_VALUE),
# so a flood of distinct strings cannot grow memory.
MAX_CATEGORIES = 1000
OTHER_VALUE = "__other__"


def baseline_sketch(feature: Mapping[str, Any]) -> np.ndarray:
    """Sorted baseline values from a statistics.json feature's KLL sketch (empty if none)."""
    try:
        data = feature["numerical_statistics"]["distribution"]["kll"]["sketch"]["data"]
    except (KeyError, TypeError):
        return np.zeros(0)
    values = [v for row in data for v in row]
    return np.sort(np.asarray(values, dtype=np.float64))


def baseline_buckets(feature: Mapping[str, Any]) -> list[dict[str, float]]:
    try:
        return list(feature["numerical_statistics"]["distribution"]["kll"]["buckets"])
    except (KeyError, TypeError):
        return []


def baseline_categories(feature: Mapping[str, Any]) -> dict[str, float]:
    try:
        buckets = feature["string_statistics"]["distribution"]["categorical"]["buckets"]
    except (KeyError, TypeError):
        return {}
    return {str(b["value"]): float(b["count"]) for b in buckets}


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """PSI of two count vectors over the same bins."""
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if e.sum() <= 0 or a.sum() <= 0:
        return 0.0
    e = np.maximum(e / e.sum(), PSI_FLOOR)
    a = np.maximum(a / a.sum(), PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def l_infinity(expected: Mapping[str, float], actual: Mapping[str, float]) -> float:
    """Largest absolute difference of shares over the union of values."""
    e_total, a_total = sum(expected.values()), sum(actual.values())
    if e_total <= 0 or a_total <= 0:
        return 0.0
    keys = set(expected) | set(actual)
    return max(abs(expected.get(k, 0.0) / e_total - actual.get(k, 0.0) / a_total) for k in keys)


def ks_p_value(distance: float, n: int, m: int) -> float:
    """Asymptotic two-sample Kolmogorov-Smirnov p-value (Stephens' small-sample correction, as in
    Numerical Recipes' ``probks``). Written out because scipy is not promised in every container."""
    effective = math.sqrt(n * m / (n + m))
    lam = (effective + 0.12 + 0.11 / effective) * distance
    if lam < 1e-3:
        return 1.0
    total, sign = 0.0, 1.0
    for k in range(1, 101):
        term = sign * math.exp(-2.0 * k * k * lam * lam)
        total += term
        if abs(term) < 1e-10:
            break
        sign = -sign
    return min(1.0, max(0.0, 2.0 * total))


class NumericAccumulator:
    """Window statistics of one numeric feature against a fixed baseline, in O(baseline) memory."""

    def __init__(self, name: str, inferred_type: str, baseline_feature: Mapping[str, Any] | None) -> None:
        self.name = name
        self.inferred_type = inferred_type
        self.count = 0
        self.missing = 0
        self.type_errors = 0
        self.total = 0.0
        self.total_sq = 0.0
        self.low = math.inf
        self.high = -math.inf
        self.negative = 0
        sketch = baseline_sketch(baseline_feature or {})
        self.sketch = sketch
        # KS grid: every distinct baseline value; counts[i] = window values in (grid[i-1], grid[i]].
        self.grid = np.unique(sketch)
        self.grid_counts = np.zeros(len(self.grid) + 1, dtype=np.int64)
        # PSI bins: baseline deciles (distinct edges only, so a constant feature has one bin).
        if len(sketch):
            quantiles = np.quantile(sketch, np.linspace(0, 1, PSI_BINS + 1)[1:-1])
            self.psi_edges = np.unique(quantiles)
        else:
            self.psi_edges = np.zeros(0)
        self.psi_counts = np.zeros(len(self.psi_edges) + 1, dtype=np.int64)
        # Report histogram: the baseline's own equal-width buckets, plus below and above.
        buckets = baseline_buckets(baseline_feature or {})
        self.hist_edges = np.asarray(
            [b["lower_bound"] for b in buckets] + ([buckets[-1]["upper_bound"]] if buckets else []),
            dtype=np.float64,
        )
        self.baseline_hist = [float(b["count"]) for b in buckets]
        self.hist_counts = np.zeros(len(self.hist_edges) + 1, dtype=np.int64)

    def add_many(self, values: Sequence[Any]) -> None:
        numbers = []
        for value in values:
            if value is None:
                self.missing += 1
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
                self.type_errors += 1
            else:
                numbers.append(value)
        if not numbers:
            return
        array = np.asarray(numbers, dtype=np.float64)
        self.count += len(array)
        self.total += float(array.sum())
        self.total_sq += float(np.square(array).sum())
        self.low = min(self.low, float(array.min()))
        self.high = max(self.high, float(array.max()))
        self.negative += int((array < 0).sum())
        if len(self.grid):
            self.grid_counts += np.bincount(
                np.searchsorted(self.grid, array, side="left"), minlength=len(self.grid_counts)
            )
        self.psi_counts += np.bincount(
            np.searchsorted(self.psi_edges, array, side="right"), minlength=len(self.psi_counts)
        )
        if len(self.hist_edges):
            # side="right": a value equal to a lower bound belongs to that bucket, as np.histogram.
            index = np.searchsorted(self.hist_edges, array, side="right")
            index[array == self.hist_edges[-1]] = len(self.hist_edges) - 1  # last bucket is closed
            self.hist_counts += np.bincount(index, minlength=len(self.hist_counts))

    def merge(self, other: NumericAccumulator) -> None:
        """Fold a worker's accumulator (same baseline) into this one."""
        self.count += other.count
        self.missing += other.missing
        self.type_errors += other.type_errors
        self.total += other.total
        self.total_sq += other.total_sq
        self.low = min(self.low, other.low)
        self.high = max(self.high, other.high)
        self.negative += other.negative
        self.grid_counts += other.grid_counts
        self.psi_counts += other.psi_counts
        self.hist_counts += other.hist_counts

    def ks(self) -> float | None:
        """Largest |window CDF - baseline CDF| at the baseline's distinct values.

        Between two baseline values the baseline CDF is flat, so the gap can only be larger just
        before the next value, by at most the window share inside that interval: with a baseline of
        up to 2,048 values this is the two-sample KS distance to within a fraction of a percent.
        """
        if not self.count or not len(self.grid):
            return None
        window_cdf = np.cumsum(self.grid_counts[:-1]) / self.count
        baseline_cdf = np.searchsorted(self.sketch, self.grid, side="right") / len(self.sketch)
        return float(np.abs(window_cdf - baseline_cdf).max())

    def ks_p_value(self) -> float | None:
        """How likely a KS distance this large is between two samples of the same distribution,
        at these sample sizes. Small baselines and windows differ by chance; a threshold alone
        would call that drift."""
        distance = self.ks()
        if distance is None:
            return None
        return ks_p_value(distance, len(self.sketch), self.count)

    def psi(self) -> float | None:
        if not self.count or not len(self.sketch):
            return None
        expected = np.bincount(
            np.searchsorted(self.psi_edges, self.sketch, side="right"), minlength=len(self.psi_counts)
        )
        return psi(expected, self.psi_counts)

    def histogram(self) -> list[dict[str, Any]]:
        """Baseline and window shares per baseline bucket, plus a bucket below and one above the
        baseline's range for window values outside it (from the window's min / to its max).

        Outside values keep their own buckets rather than being folded into the first or last
        baseline bucket: folding them in would draw a window that left the baseline's range as
        one that merely leans to an edge. Buckets with ``outside`` set hold only such values.
        """
        if not len(self.hist_edges):
            if not self.count:
                return []
            # No baseline buckets to compare with: the window's own range as one bucket.
            return [
                {
                    "lower_bound": self.low,
                    "upper_bound": self.high,
                    "baseline": 0.0,
                    "window": 1.0,
                    "window_count": float(self.count),
                    "outside": "no baseline",
                }
            ]
        counts = self.hist_counts.astype(np.float64)
        total_w = counts.sum() or 1.0
        total_b = sum(self.baseline_hist) or 1.0
        buckets: list[dict[str, Any]] = []
        if counts[0]:
            buckets.append(
                self._outside_bucket(self.low, float(self.hist_edges[0]), counts[0], total_w, "below")
            )
        buckets.extend(
            {
                "lower_bound": float(self.hist_edges[i]),
                "upper_bound": float(self.hist_edges[i + 1]),
                "baseline": self.baseline_hist[i] / total_b,
                "window": float(counts[i + 1] / total_w),
                "window_count": float(counts[i + 1]),
            }
            for i in range(len(self.baseline_hist))
        )
        if counts[-1]:
            buckets.append(
                self._outside_bucket(float(self.hist_edges[-1]), self.high, counts[-1], total_w, "above")
            )
        return buckets

    @staticmethod
    def _outside_bucket(lower: float, upper: float, count: float, total: float, side: str) -> dict[str, Any]:
        return {
            "lower_bound": lower,
            "upper_bound": upper,
            "baseline": 0.0,
            "window": float(count / total),
            "window_count": float(count),
            "outside": side,
        }

    def statistics(self) -> dict[str, Any]:
        """statistics.json entry in Model Monitor's shape. The KLL buckets describe the window's
        own distribution: the baseline's bucket edges (so the two files line up bucket by bucket)
        and, where the window has values outside the baseline's range, a bucket from the window's
        min to the first edge and one from the last edge to the window's max; counts are exact."""
        common = {"num_present": self.count, "num_missing": self.missing + self.type_errors}
        entry: dict[str, Any] = {"name": self.name, "inferred_type": self.inferred_type}
        if not self.count:
            entry["numerical_statistics"] = {"common": common}
            return entry
        mean = self.total / self.count
        variance = max(self.total_sq / self.count - mean * mean, 0.0)
        entry["numerical_statistics"] = {
            "common": common,
            "mean": mean,
            "sum": self.total,
            "std_dev": math.sqrt(variance),
            "min": self.low,
            "max": self.high,
            "distribution": {
                "kll": {
                    "buckets": [
                        {
                            "lower_bound": b["lower_bound"],
                            "upper_bound": b["upper_bound"],
                            "count": b["window_count"],
                        }
                        for b in self.histogram()
                    ]
                }
            },
        }
        return entry


class CategoricalAccumulator:
    """Counts of one categorical feature's values in the window."""

    def __init__(self, name: str, inferred_type: str, baseline_feature: Mapping[str, Any] | None) -> None:
        self.name = name
        self.inferred_type = inferred_type
        self.counts: Counter[str] = Counter()
        self.missing = 0
        self.type_errors = 0
        self.baseline = baseline_categories(baseline_feature or {})

    def add_many(self, values: Sequence[Any]) -> None:
        for value in values:
            if value is None or value == "":
                self.missing += 1
            elif not isinstance(value, str):
                self.type_errors += 1
            elif value in self.counts or len(self.counts) < MAX_CATEGORIES:
                self.counts[value] += 1
            else:
                self.counts[OTHER_VALUE] += 1

    def merge(self, other: CategoricalAccumulator) -> None:
        self.missing += other.missing
        self.type_errors += other.type_errors
        for value, count in other.counts.items():
            if value in self.counts or len(self.counts) < MAX_CATEGORIES:
                self.counts[value] += count
            else:
                self.counts[OTHER_VALUE] += count

    @property
    def count(self) -> int:
        return sum(self.counts.values())

    def distance(self) -> float | None:
        if not self.count or not self.baseline:
            return None
        return l_infinity(self.baseline, dict(self.counts))

    def outside_domain(self, domain: Sequence[str]) -> int:
        allowed = set(domain)
        return sum(count for value, count in self.counts.items() if value not in allowed)

    def histogram(self) -> list[dict[str, Any]]:
        total_b = sum(self.baseline.values()) or 1.0
        total_w = self.count or 1
        values = sorted(set(self.baseline) | set(self.counts), key=lambda v: (-self.baseline.get(v, 0), v))
        return [
            {
                "value": v,
                "baseline": self.baseline.get(v, 0.0) / total_b,
                "window": self.counts.get(v, 0) / total_w,
                "window_count": float(self.counts.get(v, 0)),
            }
            for v in values
        ]

    def statistics(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "inferred_type": self.inferred_type,
            "string_statistics": {
                "common": {"num_present": self.count, "num_missing": self.missing + self.type_errors},
                "distinct_count": float(len(self.counts)),
                "distribution": {
                    "categorical": {
                        "buckets": [
                            {"value": v, "count": float(c)}
                            for v, c in sorted(self.counts.items(), key=lambda item: (-item[1], item[0]))
                        ]
                    }
                },
            },
        }
