"""Image statistics measured the same way for the training baseline and for live traffic.

Preprocess computes these features for the training split; the data-quality monitor computes them
for captured requests; both then compare distributions. If the two sides measured differently (a
different resize, a different luma formula) the monitor would report drift that is not there, so
this module is the only place the features are defined, and it ships in the model artifact's code/.

Pixel features are computed on a bounded downscale (longest side ``ANALYSIS_MAX_SIDE``): a 6000 px
photo costs what a small one does (after decoding), and sharpness is measured at one scale.
The summaries use SageMaker Model Monitor's statistics.json / constraints.json file shapes, so
people who know Model Monitor can read them (AWS closed Model Monitor to new customers; the
project's own monitors read and write the same shapes).
"""

from __future__ import annotations

import hashlib
import heapq
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
from PIL import Image

from .image_decoding import DecodedImage, decode_image

ANALYSIS_MAX_SIDE = 128
NEAREST_PRESHRINK = 4
# Model Monitor's own baselines use 10 equal-width buckets between min and max.
HISTOGRAM_BUCKETS = 10
# The "sketch" keeps at most this many sorted values (all of them when fewer): quantiles of the
# baseline can be recomputed from the file, which is what a drift distance needs.
SKETCH_MAX_VALUES = 2048
# A categorical feature with more distinct values than this gets no domain constraint.
MAX_DOMAIN_VALUES = 50


@dataclass(frozen=True)
class FeatureSpec:
    """One feature: its column name, whether it is numeric or categorical, and its Model Monitor
    inferred_type (Integral, Fractional or String)."""

    name: str
    kind: str  # "numeric" | "categorical"
    inferred_type: str
    description: str


FEATURES: tuple[FeatureSpec, ...] = (
    FeatureSpec("width", "numeric", "Integral", "pixels, after EXIF orientation"),
    FeatureSpec("height", "numeric", "Integral", "pixels, after EXIF orientation"),
    FeatureSpec("aspect_ratio", "numeric", "Fractional", "width / height"),
    FeatureSpec("file_size_bytes", "numeric", "Integral", "size of the encoded file"),
    FeatureSpec("brightness", "numeric", "Fractional", "mean luma (BT.601), 0..1"),
    FeatureSpec("contrast", "numeric", "Fractional", "RMS contrast: std of luma, 0..1"),
    FeatureSpec("saturation", "numeric", "Fractional", "mean HSV saturation, 0..1"),
    FeatureSpec("sharpness", "numeric", "Fractional", "variance of the luma Laplacian (0..255)"),
    FeatureSpec("mean_red", "numeric", "Fractional", "mean of the red channel, 0..1"),
    FeatureSpec("mean_green", "numeric", "Fractional", "mean of the green channel, 0..1"),
    FeatureSpec("mean_blue", "numeric", "Fractional", "mean of the blue channel, 0..1"),
    FeatureSpec("std_red", "numeric", "Fractional", "std of the red channel, 0..1"),
    FeatureSpec("std_green", "numeric", "Fractional", "std of the green channel, 0..1"),
    FeatureSpec("std_blue", "numeric", "Fractional", "std of the blue channel, 0..1"),
    FeatureSpec("format", "categorical", "String", "container format, e.g. JPEG, PNG"),
    FeatureSpec("original_mode", "categorical", "String", "PIL mode before RGB, e.g. L, CMYK"),
)
FEATURE_NAMES: tuple[str, ...] = tuple(spec.name for spec in FEATURES)
FEATURES_BY_NAME: dict[str, FeatureSpec] = {spec.name: spec for spec in FEATURES}

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def analysis_image(image: Image.Image, max_side: int = ANALYSIS_MAX_SIDE) -> Image.Image:
    """Downscale so the longest side is at most ``max_side``; smaller images stay as they are."""
    width, height = image.size
    scale = max_side / max(width, height)
    if scale >= 1.0:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if scale * NEAREST_PRESHRINK < 1.0:
        # A big photo is first point-sampled to NEAREST_PRESHRINK x the target, which reads only
        # the pixels it keeps: the cost stops growing with the photo. The filtered step below
        # then averages NEAREST_PRESHRINK^2 samples per output pixel, so little aliasing is left.
        image = image.resize(
            (size[0] * NEAREST_PRESHRINK, size[1] * NEAREST_PRESHRINK), Image.Resampling.NEAREST
        )
    # reducing_gap: PIL first shrinks by an integer factor with a cheap box filter, then
    # resamples the rest; 1.0 keeps most of the work in the box step (a quarter of the time).
    return image.resize(size, Image.Resampling.BILINEAR, reducing_gap=1.0)


def compute_features(decoded: DecodedImage) -> dict[str, Any]:
    """All FEATURES of one decoded image, as a flat dict in FEATURE_NAMES order."""
    width, height = decoded.image.size
    small = analysis_image(decoded.image)
    # One contiguous row per channel: reductions over a trailing axis of 3 are many times slower.
    red, green, blue = np.asarray(small).reshape(-1, 3).T.astype(np.float32) * np.float32(1 / 255)
    means = [float(c.mean()) for c in (red, green, blue)]
    stds = [float(c.std()) for c in (red, green, blue)]
    luma = _LUMA[0] * red + _LUMA[1] * green + _LUMA[2] * blue
    highest = np.maximum(np.maximum(red, green), blue)
    lowest = np.minimum(np.minimum(red, green), blue)
    saturation = (highest - lowest) / np.maximum(highest, np.float32(1e-6))
    return {
        "width": width,
        "height": height,
        "aspect_ratio": width / height,
        "file_size_bytes": decoded.num_bytes,
        "brightness": float(luma.mean()),
        "contrast": float(luma.std()),
        "saturation": float(saturation.mean()),
        "sharpness": laplacian_variance(luma.reshape(small.height, small.width) * 255.0),
        "mean_red": float(means[0]),
        "mean_green": float(means[1]),
        "mean_blue": float(means[2]),
        "std_red": float(stds[0]),
        "std_green": float(stds[1]),
        "std_blue": float(stds[2]),
        "format": decoded.format,
        "original_mode": decoded.original_mode,
    }


def features_from_bytes(data: bytes) -> dict[str, Any]:
    """Decode (the one shared way) and measure; raises image_decoding.ImageDecodeError."""
    return compute_features(decode_image(data))


def laplacian_variance(gray: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian: low for blurred or flat images, high for sharp."""
    if gray.shape[0] < 3 or gray.shape[1] < 3:
        return 0.0
    laplacian = (
        gray[:-2, 1:-1] + gray[2:, 1:-1] + gray[1:-1, :-2] + gray[1:-1, 2:] - 4.0 * gray[1:-1, 1:-1]
    )
    return float(laplacian.var())


# ---- Model Monitor file shapes -------------------------------------------------------------------


def _present(values: Iterable[Any]) -> tuple[list[Any], int]:
    present, missing = [], 0
    for value in values:
        if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
            missing += 1
        else:
            present.append(value)
    return present, missing


def numerical_statistics(values: Sequence[Any]) -> dict[str, Any]:
    """``numerical_statistics`` of one column: mean, sum, std_dev, min, max, KLL-like distribution.

    The buckets are equal-width between min and max; the sketch holds the sorted values, thinned
    evenly to at most SKETCH_MAX_VALUES, with the parameters Model Monitor writes.
    """
    present, missing = _present(values)
    common = {"num_present": len(present), "num_missing": missing}
    if not present:
        return {"common": common}
    array = np.asarray(present, dtype=np.float64)
    low, high = float(array.min()), float(array.max())
    if high > low:
        counts, edges = np.histogram(array, bins=HISTOGRAM_BUCKETS, range=(low, high))
    else:
        counts, edges = np.array([len(array)]), np.array([low, high])
    buckets = [
        {"lower_bound": float(edges[i]), "upper_bound": float(edges[i + 1]), "count": float(c)}
        for i, c in enumerate(counts)
    ]
    ordered = np.sort(array)
    if len(ordered) > SKETCH_MAX_VALUES:
        ordered = ordered[np.linspace(0, len(ordered) - 1, SKETCH_MAX_VALUES).round().astype(int)]
    return {
        "common": common,
        "mean": float(array.mean()),
        "sum": float(array.sum()),
        "std_dev": float(array.std()),
        "min": low,
        "max": high,
        "distribution": kll_distribution(buckets, [float(v) for v in ordered]),
    }


def kll_distribution(buckets: list[dict[str, float]], sketch_values: list[float]) -> dict[str, Any]:
    """A numeric feature's ``distribution`` in Model Monitor's statistics.json shape (one writer
    for a single host's baseline and for the merge of several)."""
    return {
        "kll": {
            "buckets": buckets,
            "sketch": {
                "parameters": {"c": 0.64, "k": float(SKETCH_MAX_VALUES)},
                "data": [sketch_values],
            },
        }
    }


def string_statistics(values: Sequence[Any]) -> dict[str, Any]:
    """``string_statistics`` of one column: distinct count and a categorical distribution."""
    present, missing = _present(values)
    counts = Counter(str(value) for value in present)
    return {
        "common": {"num_present": len(present), "num_missing": missing},
        "distinct_count": float(len(counts)),
        "distribution": {
            "categorical": {
                "buckets": [
                    {"value": value, "count": float(count)}
                    for value, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
                ]
            }
        },
    }


def feature_statistics(spec: FeatureSpec, values: Sequence[Any]) -> dict[str, Any]:
    """One entry of statistics.json's ``features`` list."""
    entry: dict[str, Any] = {"name": spec.name, "inferred_type": spec.inferred_type}
    if spec.kind == "numeric":
        entry["numerical_statistics"] = numerical_statistics(values)
    elif spec.kind == "categorical":
        entry["string_statistics"] = string_statistics(values)
    else:
        raise ValueError(f"feature {spec.name}: kind {spec.kind!r} is not numeric or categorical")
    return entry


def dataset_statistics(
    rows: Sequence[Mapping[str, Any]], features: Sequence[FeatureSpec] = FEATURES
) -> dict[str, Any]:
    """statistics.json for a table of feature rows (dicts keyed by feature name)."""
    return {
        "version": 0,
        "dataset": {"item_count": len(rows)},
        "features": [
            feature_statistics(spec, [row.get(spec.name) for row in rows]) for spec in features
        ],
    }


def dataset_constraints(statistics: Mapping[str, Any]) -> dict[str, Any]:
    """constraints.json suggested from a statistics.json, as Model Monitor's baselining does."""
    constraints = []
    for feature in statistics["features"]:
        entry: dict[str, Any] = {"name": feature["name"], "inferred_type": feature["inferred_type"]}
        if "numerical_statistics" in feature:
            stats = feature["numerical_statistics"]
            entry["completeness"] = _completeness(stats["common"])
            entry["num_constraints"] = {"is_non_negative": stats.get("min", 0.0) >= 0}
        else:
            stats = feature["string_statistics"]
            entry["completeness"] = _completeness(stats["common"])
            values = [b["value"] for b in stats["distribution"]["categorical"]["buckets"]]
            if len(values) <= MAX_DOMAIN_VALUES:
                entry["string_constraints"] = {"domains": sorted(values)}
        constraints.append(entry)
    return {
        "version": 0,
        "features": constraints,
        "monitoring_config": {
            "evaluate_constraints": "Enabled",
            "emit_metrics": "Enabled",
            "datatype_check_threshold": 0.1,
            "domain_content_threshold": 0.1,
            "distribution_constraints": {
                "perform_comparison": "Enabled",
                "comparison_threshold": 0.1,
                "comparison_method": "Robust",
                "categorical_comparison_threshold": 0.1,
                "categorical_drift_method": "LInfinity",
            },
        },
    }


def _completeness(common: Mapping[str, Any]) -> float:
    total = common["num_present"] + common["num_missing"]
    return float(common["num_present"] / total) if total else 0.0


# ---- streaming, mergeable statistics (the training baseline) -------------------------------------
#
# Preprocess measures the training split one image at a time, on one host or several, and the
# baseline must not depend on how many hosts there were. So every part is exact and associative:
#
# * counts and categorical counts are integers, added;
# * moments are (n, mean, M2) held as exact rationals (``fractions.Fraction``; every float is a
#   dyadic rational, so nothing is rounded) and merged with Chan et al.'s parallel-variance rule;
#   one host or three give the same rationals, and the floats written are rounded once, at the end;
# * the sketch keeps the SKETCH_MAX_VALUES values whose image key hashes lowest (a bottom-k sample):
#   the lowest k of a union are the lowest k of the lowest k of each part, whatever the arrival
#   order or host split. Below k values it holds every value, as before;
# * the equal-width buckets span the global min..max, known only once every host is done, so they
#   are counted in a second pass over the features tables (streamed, in fixed-size chunks).

PARTIAL_VERSION = 1
_HISTOGRAM_CHUNK = 65536
_SHIFT = 1074  # 2**-1074 is the smallest positive double


def sketch_priority(key: str) -> int:
    """A value's place in the bottom-k sketch: a hash of its image's key, not its arrival order."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


def _exact_moments(values: Sequence[float]) -> tuple[int, Fraction, Fraction]:
    """(n, mean, M2) of a batch, exactly: from the exact sum and sum of squares."""
    n = len(values)
    if not n:
        return 0, Fraction(0), Fraction(0)
    # Integers scaled by 2**_SHIFT hold any finite double exactly, and add fast.
    total = squares = 0
    for value in values:
        numerator, denominator = value.as_integer_ratio()
        exponent = _SHIFT - denominator.bit_length() + 1
        total += numerator << exponent
        squares += (numerator * numerator) << (exponent + exponent)
    total_fraction = Fraction(total, 1 << _SHIFT)
    squares_fraction = Fraction(squares, 1 << (2 * _SHIFT))
    return n, total_fraction / n, squares_fraction - total_fraction * total_fraction / n


def merge_moments(
    a: tuple[int, Fraction, Fraction], b: tuple[int, Fraction, Fraction]
) -> tuple[int, Fraction, Fraction]:
    """Chan, Golub & LeVeque's pairwise rule for (n, mean, M2); exact in rationals."""
    n_a, mean_a, m2_a = a
    n_b, mean_b, m2_b = b
    n = n_a + n_b
    if n_a == 0:
        return b
    if n_b == 0:
        return a
    delta = mean_b - mean_a
    return n, mean_a + delta * n_b / n, m2_a + m2_b + delta * delta * n_a * n_b / n


class NumericAccumulator:
    """One numeric feature, streamed: counts, exact moments, min, max and the bottom-k sketch."""

    def __init__(self) -> None:
        self.missing = 0
        self.moments: tuple[int, Fraction, Fraction] = (0, Fraction(0), Fraction(0))
        self.low: float | None = None
        self.high: float | None = None
        self.sketch: list[tuple[int, str, float]] = []  # heap of (-priority, key, value)
        self._pending: list[float] = []

    def add(self, key: str, value: Any, priority: int) -> None:
        if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
            self.missing += 1
            return
        value = float(value)
        self._pending.append(value)
        if len(self._pending) >= 1024:  # exact sums of a batch are cheaper than value by value
            self._flush()
        self.low = value if self.low is None else min(self.low, value)
        self.high = value if self.high is None else max(self.high, value)
        item = (-priority, key, value)
        if len(self.sketch) < SKETCH_MAX_VALUES:
            heapq.heappush(self.sketch, item)
        elif item > self.sketch[0]:
            heapq.heapreplace(self.sketch, item)

    def _flush(self) -> None:
        if self._pending:
            self.moments = merge_moments(self.moments, _exact_moments(self._pending))
            self._pending = []

    def to_json(self) -> dict[str, Any]:
        self._flush()
        n, mean, m2 = self.moments
        return {
            "num_present": n,
            "num_missing": self.missing,
            "mean": _fraction_text(mean),
            "m2": _fraction_text(m2),
            "min": self.low,
            "max": self.high,
            "sketch": sorted([-p, k, v] for p, k, v in self.sketch),
        }


def _fraction_text(value: Fraction) -> str:
    return f"{value.numerator}/{value.denominator}"


def _fraction(text: str) -> Fraction:
    return Fraction(text)


class StatisticsAccumulator:
    """The training split's baseline, one feature row at a time; ``partial()`` is what a host
    writes, ``merge_partials`` + ``finalize_statistics`` turn any number of them into
    statistics.json."""

    def __init__(self, features: Sequence[FeatureSpec] = FEATURES) -> None:
        self.features = tuple(features)
        self.items = 0
        self.numeric = {s.name: NumericAccumulator() for s in self.features if s.kind == "numeric"}
        self.categorical: dict[str, Counter] = {
            s.name: Counter() for s in self.features if s.kind == "categorical"
        }
        self.categorical_missing = dict.fromkeys(self.categorical, 0)

    def add(self, key: str, row: Mapping[str, Any]) -> None:
        self.items += 1
        priority = sketch_priority(key)
        for name, accumulator in self.numeric.items():
            accumulator.add(key, row.get(name), priority)
        for name, counts in self.categorical.items():
            value = row.get(name)
            if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
                self.categorical_missing[name] += 1
            else:
                counts[str(value)] += 1

    def partial(self) -> dict[str, Any]:
        return {
            "partial_version": PARTIAL_VERSION,
            "item_count": self.items,
            "numeric": {name: acc.to_json() for name, acc in self.numeric.items()},
            "categorical": {
                name: {"counts": dict(sorted(counts.items())),
                       "num_missing": self.categorical_missing[name]}
                for name, counts in self.categorical.items()
            },
        }  # fmt: skip


def merge_partials(partials: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Combine hosts' partial statistics exactly (see the section comment)."""
    if not partials:
        raise ValueError("no partial statistics to merge")
    versions = {p.get("partial_version") for p in partials}
    if versions != {PARTIAL_VERSION}:
        raise ValueError(f"partial statistics versions {sorted(map(str, versions))} are not "
                         f"{PARTIAL_VERSION}")  # fmt: skip
    merged: dict[str, Any] = {
        "partial_version": PARTIAL_VERSION,
        "item_count": sum(p["item_count"] for p in partials),
        "numeric": {},
        "categorical": {},
    }
    for name in partials[0]["numeric"]:
        parts = [p["numeric"][name] for p in partials]
        moments = (0, Fraction(0), Fraction(0))
        for part in parts:
            moments = merge_moments(
                moments, (part["num_present"], _fraction(part["mean"]), _fraction(part["m2"]))
            )
        present = [part for part in parts if part["num_present"]]
        sketch = sorted(tuple(item) for part in parts for item in part["sketch"])
        merged["numeric"][name] = {
            "num_present": moments[0],
            "num_missing": sum(part["num_missing"] for part in parts),
            "mean": _fraction_text(moments[1]),
            "m2": _fraction_text(moments[2]),
            "min": min((part["min"] for part in present), default=None),
            "max": max((part["max"] for part in present), default=None),
            "sketch": [list(item) for item in sketch[:SKETCH_MAX_VALUES]],
        }
    for name in partials[0]["categorical"]:
        counts: Counter = Counter()
        for part in partials:
            counts.update(part["categorical"][name]["counts"])
        merged["categorical"][name] = {
            "counts": dict(sorted(counts.items())),
            "num_missing": sum(p["categorical"][name]["num_missing"] for p in partials),
        }
    return merged


def _equal_width_counts(
    values: Iterable[float], low: float, high: float
) -> tuple[np.ndarray, np.ndarray]:
    """np.histogram's buckets between low and high, counted chunk by chunk (the same per-value
    assignment, since each value's bucket depends only on it and the range)."""
    if not high > low:
        return np.zeros(1, dtype=np.int64), np.array([low, high])
    counts = np.zeros(HISTOGRAM_BUCKETS, dtype=np.int64)
    edges = None
    chunk: list[float] = []

    def flush() -> None:
        nonlocal edges
        if chunk:
            part, edges = np.histogram(np.asarray(chunk), bins=HISTOGRAM_BUCKETS, range=(low, high))
            counts[:] += part
            chunk.clear()

    for value in values:
        chunk.append(value)
        if len(chunk) >= _HISTOGRAM_CHUNK:
            flush()
    flush()
    if edges is None:
        edges = np.linspace(low, high, HISTOGRAM_BUCKETS + 1)
    return counts, edges


def finalize_statistics(
    merged: Mapping[str, Any],
    column_values: Callable[[str], Iterable[Any]],
    features: Sequence[FeatureSpec] = FEATURES,
) -> dict[str, Any]:
    """statistics.json from merged partials; ``column_values(name)`` streams one numeric column
    again (from the features tables) for the equal-width buckets."""
    entries = []
    for spec in features:
        entry: dict[str, Any] = {"name": spec.name, "inferred_type": spec.inferred_type}
        if spec.kind == "numeric":
            part = merged["numeric"][spec.name]
            common = {"num_present": part["num_present"], "num_missing": part["num_missing"]}
            stats: dict[str, Any] = {"common": common}
            if part["num_present"]:
                n, mean, m2 = part["num_present"], _fraction(part["mean"]), _fraction(part["m2"])
                low, high = float(part["min"]), float(part["max"])
                present, _ = _present(column_values(spec.name))
                counts, edges = _equal_width_counts((float(v) for v in present), low, high)
                if high > low:
                    buckets = [
                        {"lower_bound": float(edges[i]), "upper_bound": float(edges[i + 1]),
                         "count": float(c)}
                        for i, c in enumerate(counts)
                    ]  # fmt: skip
                else:
                    buckets = [{"lower_bound": low, "upper_bound": high, "count": float(n)}]
                sketch_values = sorted(float(item[2]) for item in part["sketch"])
                stats.update(
                    {
                        "mean": float(mean),
                        "sum": float(mean * n),
                        "std_dev": math.sqrt(float(m2 / n)),
                        "min": low,
                        "max": high,
                        "distribution": kll_distribution(buckets, sketch_values),
                    }
                )
            entry["numerical_statistics"] = stats
        else:
            part = merged["categorical"][spec.name]
            counts = part["counts"]
            entry["string_statistics"] = {
                "common": {"num_present": sum(counts.values()), "num_missing": part["num_missing"]},
                "distinct_count": float(len(counts)),
                "distribution": {
                    "categorical": {
                        "buckets": [
                            {"value": value, "count": float(count)}
                            for value, count in sorted(counts.items(),
                                                       key=lambda item: (-item[1], item[0]))
                        ]
                    }
                },
            }  # fmt: skip
        entries.append(entry)
    return {"version": 0, "dataset": {"item_count": merged["item_count"]}, "features": entries}
