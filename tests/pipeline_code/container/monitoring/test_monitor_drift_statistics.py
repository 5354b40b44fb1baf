"""Drift distances and the monitoring window, checked against scipy and by hand."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from scipy.stats import ks_2samp

from pipeline_code.container.dogbreeds_jobs.data import image_features
from pipeline_code.container.dogbreeds_jobs.monitoring import drift_statistics, monitor_window


def _accumulator(
    baseline: np.ndarray, window: np.ndarray, chunk: int = 97
) -> drift_statistics.NumericAccumulator:
    feature = {"numerical_statistics": image_features.numerical_statistics(list(baseline))}
    accumulator = drift_statistics.NumericAccumulator("x", "Fractional", feature)
    for start in range(0, len(window), chunk):  # streamed in chunks, as the monitor does
        accumulator.add_many(window[start : start + chunk].tolist())
    return accumulator


@pytest.mark.parametrize("shift", [0.0, 0.2, 1.0])
def test_streaming_ks_equals_scipy_two_sample_ks(shift):
    rng = np.random.default_rng(1)
    baseline, window = rng.normal(0, 1, 1500), rng.normal(shift, 1, 5000)
    assert _accumulator(baseline, window).ks() == pytest.approx(
        ks_2samp(baseline, window).statistic, abs=1e-12
    )


def test_psi_is_small_for_the_same_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(2)
    baseline = rng.uniform(0, 1, 2000)
    same = _accumulator(baseline, rng.uniform(0, 1, 4000)).psi()
    shifted = _accumulator(baseline, rng.uniform(0.3, 1.3, 4000)).psi()
    assert same < 0.02 and shifted > 0.5
    # By hand: deciles of the baseline, 10% each; a window all in one bin.
    expected = np.full(10, 0.1)
    actual = np.array([1.0] + [0.0] * 9)
    by_hand = sum((a - e) * np.log(a / e) for a, e in zip(np.maximum(actual, 1e-4), expected, strict=True))
    assert drift_statistics.psi(expected * 1000, actual * 1000) == pytest.approx(by_hand)


def test_window_statistics_moments_and_missing_values():
    accumulator = _accumulator(np.arange(10.0), np.array([1.0, 2.0, 3.0, 4.0]))
    accumulator.add_many([None, "seven", float("nan")])
    stats = accumulator.statistics()["numerical_statistics"]
    assert stats["mean"] == 2.5 and stats["min"] == 1.0 and stats["max"] == 4.0
    assert stats["std_dev"] == pytest.approx(np.std([1, 2, 3, 4]))
    assert stats["common"] == {"num_present": 4, "num_missing": 3}
    assert accumulator.type_errors == 2 and accumulator.missing == 1
    assert sum(b["count"] for b in stats["distribution"]["kll"]["buckets"]) == 4


def test_window_statistics_keep_values_outside_the_baseline_range_in_their_own_buckets():
    """statistics.json describes the window: a window above the baseline's range must show up
    above it (Model Monitor's visualisation draws these buckets), not piled into the last bucket."""
    baseline = np.linspace(0.0, 1.0, 200)
    window = np.linspace(3.0, 5.0, 50)
    accumulator = _accumulator(baseline, window)
    buckets = accumulator.statistics()["numerical_statistics"]["distribution"]["kll"]["buckets"]
    top = max(baseline)
    above = [b for b in buckets if b["lower_bound"] >= top]
    assert sum(b["count"] for b in above) == 50
    assert sum(b["count"] for b in buckets if b["upper_bound"] <= top) == 0
    assert above == [{"lower_bound": top, "upper_bound": 5.0, "count": 50.0}]
    # Every bucket has Model Monitor's three fields, and the buckets tile the range in order.
    assert all(set(b) == {"lower_bound", "upper_bound", "count"} for b in buckets)
    assert all(a["upper_bound"] == b["lower_bound"] for a, b in zip(buckets, buckets[1:], strict=False))
    # The report's histogram marks the outside bucket, with no baseline share.
    shown = accumulator.histogram()
    assert shown[-1]["outside"] == "above" and shown[-1]["baseline"] == 0.0 and shown[-1]["window"] == 1.0


def test_window_values_on_both_sides_and_inside_are_counted_exactly():
    baseline = np.linspace(0.0, 1.0, 200)
    window = np.array([-2.0, -1.0, 0.0, 0.5, 1.0, 1.5])  # 0 and 1 are the first and last edges
    buckets = _accumulator(baseline, window).statistics()["numerical_statistics"]["distribution"]["kll"][
        "buckets"
    ]
    assert buckets[0] == {"lower_bound": -2.0, "upper_bound": 0.0, "count": 2.0}
    assert buckets[-1] == {"lower_bound": 1.0, "upper_bound": 1.5, "count": 1.0}
    inside = buckets[1:-1]
    assert sum(b["count"] for b in inside) == 3 and inside[0]["count"] == 1 and inside[-1]["count"] == 1


def test_l_infinity_and_domain_checks_of_categories():
    feature = {"string_statistics": image_features.string_statistics(["a"] * 50 + ["b"] * 50)}
    accumulator = drift_statistics.CategoricalAccumulator("breed", "String", feature)
    accumulator.add_many(["a"] * 20 + ["b"] * 70 + ["c"] * 10 + [None, 3])
    assert accumulator.distance() == pytest.approx(0.3)  # b: 0.7 vs 0.5; a: 0.2 vs 0.5
    assert accumulator.outside_domain(["a", "b"]) == 10
    assert (accumulator.missing, accumulator.type_errors) == (1, 1)


def test_window_is_whole_hours_before_the_start_time():
    window = monitor_window.monitoring_window("2026-11-27T10:07:31.123Z", 2)
    assert (window.start, window.end) == (
        datetime(2026, 11, 27, 8, tzinfo=UTC),
        datetime(2026, 11, 27, 10, tzinfo=UTC),
    )
    assert window.hour_folders() == ["2026/11/27/08", "2026/11/27/09"]
    override = monitor_window.monitoring_window(
        "2026-11-27T10:07:31Z", 1, end_override="2026-01-01T00:30:00+01:00"
    )
    assert override.end == datetime(2025, 12, 31, 23, tzinfo=UTC)
    with pytest.raises(ValueError, match="window hours must be between 1 and 744, got 0"):
        monitor_window.monitoring_window("2026-11-27T10:00:00Z", 0)
    with pytest.raises(ValueError, match="window end .10 o.clock. is not an ISO 8601 time"):
        monitor_window.monitoring_window("10 o'clock", 1)


@pytest.mark.parametrize(
    ("n", "m", "shift"), [(40, 200, 0.0), (40, 200, 0.5), (1500, 5000, 0.05), (200, 60, 1.0)]
)
def test_ks_p_value_agrees_with_scipys_asymptotic_two_sample_test(n, m, shift):
    rng = np.random.default_rng(n + m)
    baseline, window = rng.normal(0, 1, n), rng.normal(shift, 1, m)
    ours = _accumulator(baseline, window).ks_p_value()
    theirs = ks_2samp(baseline, window, method="asymp").pvalue
    assert ours == pytest.approx(theirs, abs=0.02)


def test_small_samples_over_the_threshold_by_chance_are_not_significant():
    """36 baseline values against 240 from the same distribution: KS often exceeds 0.2 by chance,
    which is why the monitor also asks for significance before it calls a feature drifted."""
    rng = np.random.default_rng(5)
    chance = [
        _accumulator(rng.normal(0, 1, 36), rng.normal(0, 1, 240)) for _ in range(200)
    ]
    over_threshold = [a for a in chance if a.ks() > 0.2]
    false_alarms = [a for a in over_threshold if a.ks_p_value() < 0.01]
    # The threshold alone calls about one window in ten drifted; with significance, about 1 in 100.
    assert len(over_threshold) >= 15
    assert len(false_alarms) <= 4
    shifted = _accumulator(rng.normal(0, 1, 36), rng.normal(1.5, 1, 240))
    assert shifted.ks() > 0.5 and shifted.ks_p_value() < 1e-6


def test_negative_values_against_a_non_negative_baseline_and_foreign_categories_are_violations():
    import argparse

    from pipeline_code.container.dogbreeds_jobs.monitoring import model_monitor_files, monitor_data_quality

    # The monitor imports its siblings by bare name, as in the container; use its own module objects.
    drift = monitor_data_quality.drift_statistics
    feature = {"numerical_statistics": image_features.numerical_statistics(list(np.linspace(0, 1, 200)))}
    numeric = drift.NumericAccumulator("x", "Fractional", feature)
    numeric.add_many(np.linspace(-0.5, 1, 200).tolist())
    categorical = drift.CategoricalAccumulator(
        "label", "String", {"string_statistics": {"distribution": {"categorical": {"buckets": [
            {"value": "beagle", "count": 50}, {"value": "pug", "count": 50}]}}}}
    )
    categorical.add_many(["beagle"] * 40 + ["wolf"] * 60)
    constraints = model_monitor_files.data_quality_constraints(
        [{"name": "x", "inferred_type": "Fractional"}, {"name": "label", "inferred_type": "String"}],
        string_domains={"label": ["beagle", "pug"]},
    )
    args = argparse.Namespace(min_records=30, psi_threshold=10.0, ks_threshold=1.0,
                              prediction_distance_threshold=1.0, drift_significance=0.01,
                              completeness_tolerance=0.01)
    violations, _ = monitor_data_quality.check_constraints(
        {"x": numeric, "label": categorical}, [constraints], 200, args
    )
    kinds = {(v["feature_name"], v["constraint_check_type"]) for v in violations}
    assert ("x", "data_type_check") in kinds  # negatives where the baseline had none
    assert ("label", "categorical_values_check") in kinds  # 60% outside the domain


def test_capture_files_begun_in_the_hour_before_the_window_are_read(tmp_path):
    """A capture file is named after its first record: one begun at 09:59 holds 10:00 records."""
    for hour in ("09", "10", "11"):
        folder = tmp_path / "AllTraffic" / "2026" / "11" / "27" / hour
        folder.mkdir(parents=True)
        (folder / f"59-00-000-{hour}.jsonl").write_text("{}\n")
    window = monitor_window.monitoring_window("2026-11-27T11:05:00Z", 1)
    listed = [path.rsplit("/", 1)[1] for path in monitor_window.iter_capture_objects(str(tmp_path), window)]
    assert listed == ["59-00-000-09.jsonl", "59-00-000-10.jsonl"]
