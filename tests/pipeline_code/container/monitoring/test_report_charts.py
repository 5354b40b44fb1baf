"""Report building blocks without a browser: number rounding, chart text, confused pairs, links."""

from __future__ import annotations

import os

import pytest

from pipeline_code.container.dogbreeds_jobs.monitoring import (
    model_quality_report,
    monitor_report,
    report_charts,
)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0.691234567, "0.6912"),
        (5.52161234, "5.522"),
        (0.00123456, "0.001235"),
        (0.000123456, "1.23e-04"),
        (3.7e-31, "3.70e-31"),
        (12345.678, "12,346"),
        (300.0, "300"),
        (300, "300"),
        (0.0, "0"),
        (None, "\u2013"),
        (True, "yes"),
    ],
)
def test_numbers_are_rounded_for_reading(value, shown):
    assert report_charts.number(value) == shown


def test_histogram_names_its_axis_edges_and_outside_buckets():
    buckets = [
        {"lower_bound": 0.0, "upper_bound": 0.5, "baseline": 0.5, "window": 0.0},
        {"lower_bound": 0.5, "upper_bound": 1.0, "baseline": 0.5, "window": 0.25},
        {"lower_bound": 1.0, "upper_bound": 3.14159, "baseline": 0.0, "window": 0.75, "outside": "above"},
    ]
    svg = report_charts.histogram_svg(buckets, "brightness")
    for text in (">0%<", ">share<", ">0<", ">0.5<", ">1<", ">3.14<", ">above<", "brightness (bucket edges)"):
        assert text in svg
    assert report_charts.OUTSIDE_COLOUR in svg


def test_categorical_chart_shows_the_values_that_moved_most_first_and_says_what_it_left_out():
    histogram = [{"value": f"breed_{i:03d}", "baseline": 0.01, "window": 0.01} for i in range(60)]
    histogram[42]["window"] = 0.2
    html = monitor_report.categorical_chart("predicted_label", histogram)
    assert html.index("breed_042") < html.index("breed_000")
    assert f"the {monitor_report.MAX_CATEGORICAL_BARS} of 60 values" in html
    assert "breed_059" not in html


def test_most_confused_pairs_are_the_largest_off_diagonal_cells():
    confusion = {
        "beagle": {"beagle": 8, "pug": 2, "collie": 0},
        "pug": {"beagle": 5, "pug": 5, "collie": 0},
        "collie": {"beagle": 0, "pug": 1, "collie": 9},
    }
    pairs = model_quality_report.confused_pairs(confusion, top=2)
    assert [(p["true"], p["predicted"], p["count"]) for p in pairs] == [
        ("pug", "beagle", 5),
        ("beagle", "pug", 2),
    ]
    assert pairs[0]["share"] == 0.5


def test_baseline_links_are_relative_on_disk_and_text_in_s3(tmp_path, monkeypatch):
    monkeypatch.delenv("DOGBREEDS_LOCAL_S3_ROOT", raising=False)
    report = tmp_path / "monitoring" / "2026" / "11" / "20" / "10" / "run"
    baseline = tmp_path / "runs" / "exec-1" / "statistics.json"
    html = monitor_report.files_section(
        str(report), {"data_statistics": str(baseline), "model_statistics": "s3://bucket/x/statistics.json"}
    )
    relative = os.path.relpath(baseline, report)
    assert f'<a href="{relative}">' in html
    assert "<code>s3://bucket/x/statistics.json</code>" in html
    assert '<a href="summary.json">' in html


def test_violation_descriptions_are_rounded_on_the_page_only():
    description = "Baseline drift distance: 0.2511111111111112 exceeds threshold: 0.2. (KS 0.3, p 1.2e-05)"
    assert monitor_report.readable(description) == (
        "Baseline drift distance: 0.2511 exceeds threshold: 0.2. (KS 0.3, p 1.2e-05)"
    )
