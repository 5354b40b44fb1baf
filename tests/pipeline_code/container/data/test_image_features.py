"""The shared image features and their Model Monitor-shaped statistics and constraints."""

from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest
from PIL import Image, ImageFilter

from pipeline_code.container.dogbreeds_jobs.data import image_features as features
from pipeline_code.container.dogbreeds_jobs.data.image_decoding import DecodedImage, decode_image


def encoded(array: np.ndarray, fmt: str = "PNG", **save) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt, **save)
    return buffer.getvalue()


def checkerboard(size: int, cell: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    board = (((yy // cell) + (xx // cell)) % 2 * 255).astype(np.uint8)
    return np.stack([board] * 3, axis=-1)


def test_the_feature_list_is_one_constant_that_compute_features_follows():
    assert len(set(features.FEATURE_NAMES)) == len(features.FEATURES)
    assert {spec.kind for spec in features.FEATURES} == {"numeric", "categorical"}
    for spec in features.FEATURES:
        expected = "String" if spec.kind == "categorical" else ("Integral", "Fractional")
        assert spec.inferred_type in expected
    row = features.features_from_bytes(encoded(checkerboard(16, 4)))
    assert tuple(row) == features.FEATURE_NAMES


def test_flat_grey_and_pure_red_measure_what_they_are():
    grey = features.features_from_bytes(encoded(np.full((30, 40, 3), 128, np.uint8)))
    assert grey["brightness"] == pytest.approx(128 / 255, abs=1e-4)
    assert grey["contrast"] == pytest.approx(0.0, abs=1e-6)
    assert grey["saturation"] == pytest.approx(0.0, abs=1e-6)
    assert grey["sharpness"] == pytest.approx(0.0, abs=1e-6)
    assert (grey["width"], grey["height"], grey["aspect_ratio"]) == (40, 30, pytest.approx(4 / 3))
    assert grey["format"] == "PNG"
    red = np.zeros((20, 20, 3), np.uint8)
    red[..., 0] = 255
    row = features.features_from_bytes(encoded(red))
    assert row["saturation"] == pytest.approx(1.0)
    assert (row["mean_red"], row["mean_green"], row["std_red"]) == pytest.approx((1.0, 0.0, 0.0))


def test_sharpness_drops_when_the_picture_is_blurred():
    sharp = Image.fromarray(checkerboard(96, 6))
    blurred = sharp.filter(ImageFilter.GaussianBlur(3))
    as_bytes = [encoded(np.asarray(image)) for image in (sharp, blurred)]
    sharp_row, blurred_row = (features.features_from_bytes(data) for data in as_bytes)
    assert sharp_row["sharpness"] > 5 * blurred_row["sharpness"]
    assert sharp_row["contrast"] > blurred_row["contrast"]


def test_a_huge_photo_is_measured_on_a_bounded_downscale_like_a_small_one():
    small = checkerboard(120, 30)
    large = np.asarray(Image.fromarray(small).resize((3000, 3000), Image.Resampling.NEAREST))
    analysed = features.analysis_image(Image.fromarray(large))
    assert max(analysed.size) == features.ANALYSIS_MAX_SIDE
    small_row = features.features_from_bytes(encoded(small))
    large_row = features.features_from_bytes(encoded(large))
    assert large_row["width"] == 3000
    for name in ("brightness", "contrast", "mean_red", "saturation"):
        assert large_row[name] == pytest.approx(small_row[name], abs=0.02), name


def test_format_size_and_original_mode_come_from_the_file():
    gray_jpeg = encoded(np.full((10, 12), 90, np.uint8), "JPEG", quality=80)
    row = features.compute_features(decode_image(gray_jpeg))
    assert (row["format"], row["original_mode"]) == ("JPEG", "L")
    assert row["file_size_bytes"] == len(gray_jpeg)


def test_numerical_statistics_match_numpy_and_count_missing_values():
    values = [3.0, 1.0, None, 4.0, 1.0, float("nan"), 5.0, 9.0]
    stats = features.numerical_statistics(values)
    present = np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0])
    assert stats["common"] == {"num_present": 6, "num_missing": 2}
    assert stats["mean"] == pytest.approx(present.mean())
    assert stats["sum"] == pytest.approx(present.sum())
    assert stats["std_dev"] == pytest.approx(present.std())
    assert (stats["min"], stats["max"]) == (1.0, 9.0)
    buckets = stats["distribution"]["kll"]["buckets"]
    assert len(buckets) == features.HISTOGRAM_BUCKETS
    assert sum(b["count"] for b in buckets) == 6
    assert buckets[0]["lower_bound"] == 1.0 and buckets[-1]["upper_bound"] == 9.0
    assert stats["distribution"]["kll"]["sketch"]["data"] == [sorted(present.tolist())]


def test_sketch_is_thinned_but_keeps_the_extremes():
    stats = features.numerical_statistics(list(range(10_000)))
    data = stats["distribution"]["kll"]["sketch"]["data"][0]
    assert len(data) == features.SKETCH_MAX_VALUES
    assert (data[0], data[-1]) == (0.0, 9999.0)
    assert data == sorted(data)


def test_constant_column_gets_one_bucket():
    stats = features.numerical_statistics([2.5, 2.5, 2.5])
    assert stats["distribution"]["kll"]["buckets"] == [
        {"lower_bound": 2.5, "upper_bound": 2.5, "count": 3.0}
    ]


def test_dataset_statistics_and_constraints_have_model_monitor_shapes():
    rows = [
        features.features_from_bytes(encoded(np.full((8 + i, 10, 3), 20 * i, np.uint8)))
        for i in range(5)
    ]
    rows[0]["format"] = "JPEG"
    rows.append({name: None for name in features.FEATURE_NAMES})  # a row with nothing measured
    statistics = features.dataset_statistics(rows)
    json.dumps(statistics, allow_nan=False)  # strict JSON: Model Monitor's parser has no NaN
    assert statistics["version"] == 0
    assert statistics["dataset"] == {"item_count": 6}
    by_name = {f["name"]: f for f in statistics["features"]}
    assert [f["name"] for f in statistics["features"]] == list(features.FEATURE_NAMES)
    assert by_name["height"]["inferred_type"] == "Integral"
    assert by_name["height"]["numerical_statistics"]["max"] == 12
    formats = by_name["format"]["string_statistics"]
    assert formats["distinct_count"] == 2
    assert formats["distribution"]["categorical"]["buckets"] == [
        {"value": "PNG", "count": 4.0},
        {"value": "JPEG", "count": 1.0},
    ]

    constraints = features.dataset_constraints(statistics)
    json.dumps(constraints, allow_nan=False)
    by_name = {f["name"]: f for f in constraints["features"]}
    assert by_name["brightness"]["completeness"] == pytest.approx(5 / 6)
    assert by_name["brightness"]["num_constraints"] == {"is_non_negative": True}
    assert by_name["format"]["string_constraints"] == {"domains": ["JPEG", "PNG"]}
    config = constraints["monitoring_config"]
    assert config["evaluate_constraints"] == "Enabled"
    assert config["distribution_constraints"]["comparison_threshold"] == 0.1


def test_negative_values_lift_the_non_negative_constraint():
    spec = features.FeatureSpec("delta", "numeric", "Fractional", "test column")
    statistics = features.dataset_statistics([{"delta": -1.0}, {"delta": 2.0}], [spec])
    constraints = features.dataset_constraints(statistics)
    assert constraints["features"][0]["num_constraints"] == {"is_non_negative": False}


def test_unknown_feature_kind_is_refused():
    spec = features.FeatureSpec("x", "ordinal", "Integral", "bad kind")
    with pytest.raises(ValueError, match="not numeric or categorical"):
        features.feature_statistics(spec, [1])


def test_feature_cost_does_not_grow_with_the_photo():
    rng = np.random.default_rng(0)
    small = Image.fromarray(rng.integers(0, 255, (375, 500, 3), dtype=np.uint8))
    huge = small.resize((4000, 3000))

    def best_seconds(image):
        decoded = DecodedImage(image=image, format="JPEG", original_mode="RGB", num_bytes=1)
        times = []
        for _ in range(5):
            start = time.perf_counter()
            features.compute_features(decoded)
            times.append(time.perf_counter() - start)
        return min(times)

    # Full filtering of a 12-megapixel picture took ~20x the small one; point pre-sampling ~1x.
    assert best_seconds(huge) < 4 * best_seconds(small)
