"""The monitoring reports as a reader sees them: both pages rendered in headless Chromium.

The reports come from the real jobs (a really trained model, brightness-drifted capture, ground
truth with wrong labels); report_browser/render.mjs beside this file opens each page, measures what was
rendered and takes a screenshot. The browser is the Chromium that the npm devDependency
@sparticuz/chromium ships, so `make setup` (npm ci) brings it; under CI a missing browser fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from monitoring_cases import ENDPOINT, capture_traffic, run_monitor
from PIL import Image
from repo_paths import REPO_ROOT

from dogbreeds.ground_truth import read_records, write_ground_truth
from pipeline_code.container.dogbreeds_jobs.monitoring import report_charts

RENDER = Path(__file__).with_name("report_browser") / "render.mjs"
WIDTH = 1280
# A long decimal in the rendered text means a number escaped the rounding.
UNROUNDED = re.compile(r"\d\.\d{7,}")


def browser_missing() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    for package in ("@sparticuz/chromium", "puppeteer-core"):
        if not (REPO_ROOT / "node_modules" / package).is_dir():
            return f"node_modules/{package} is missing: run `make setup` (npm ci)"
    return None


def require_browser() -> None:
    """Skip without the browser on a developer's machine; under CI a missing browser is a failure,
    or the pages would go unchecked without anyone noticing."""
    missing = browser_missing()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must check the report pages in a browser, but {missing}")
        pytest.skip(f"no headless browser: {missing}")


def render(pages: list[Path], out: Path) -> list[dict]:
    result = subprocess.run(
        ["node", str(RENDER), "--out", str(out), "--width", str(WIDTH), *map(str, pages)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout)["pages"]


def _monitor(script: str, out: Path, *args: str) -> Path:
    result = run_monitor(
        script,
        "--output-uri", str(out), "--window-end", "2026-11-20T10:02:00Z", "--endpoint-name", ENDPOINT,
        "--metrics-sink", str(out / "metrics.jsonl"), "--run-id", "browser-check", *args,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    [page] = out.rglob("report.html")
    return page


@pytest.fixture(scope="module")
def rendered(request, tmp_path_factory) -> dict:
    require_browser()  # before the model is trained: no minute spent on a test that cannot run
    monitor_case = request.getfixturevalue("monitor_case")
    root = tmp_path_factory.mktemp("report-browser")
    sent = capture_traffic(monitor_case, root / "capture", drift="brightness", limit=150)
    traffic = root / "traffic.jsonl"
    traffic.write_text("".join(json.dumps(entry) + "\n" for entry in sent))
    write_ground_truth(
        read_records(traffic), str(root / "gt"), wrong_fraction=0.3, seed=5,
        when=datetime(2026, 11, 20, 9, 40, tzinfo=UTC),
    )  # fmt: skip
    capture = ["--capture-uri", str(root / "capture" / ENDPOINT), "--baseline-uri", str(monitor_case.run)]
    quality = [*capture, "--ground-truth-uri", str(root / "gt")]
    pages = {
        "data": _monitor("monitor_data_quality.py", root / "data_quality", *capture, "--workers", "1"),
        "model": _monitor("monitor_model_quality.py", root / "model_quality", *quality),
        "unjudged": _monitor(
            "monitor_model_quality.py",
            root / "unjudged" / "model_quality",
            *quality,
            "--min-labelled",
            "1000",
        ),
    }
    measured = render(list(pages.values()), root / "shots")
    return {"case": monitor_case, "pages": pages, **dict(zip(pages, measured, strict=True))}


def _chart(page: dict, feature: str) -> dict:
    [chart] = [c for c in page["charts"] if feature in (c["label"], c["label"].split(":")[0])]
    return chart


@pytest.mark.parametrize("name", ["data", "model", "unjudged"])
def test_every_page_loads_cleanly_fits_the_width_and_links_existing_files(rendered, name):
    page = rendered[name]
    assert page["errors"] == []
    assert page["charts"], "no chart rendered"
    for chart in page["charts"]:
        assert chart["width"] > 50 and chart["height"] > 30, chart["label"]
        assert chart["texts"], f"{chart['label']}: no visible text (axes, names, values)"
        assert chart["right"] <= WIDTH, f"{chart['label']} sticks out of the page"
    # Nothing wider than the window, so nobody scrolls sideways to read the page.
    assert page["scrollWidth"] <= page["viewportWidth"]
    hrefs = {link["href"]: link for link in page["links"]}
    assert {"statistics.json", "constraint_violations.json", "summary.json"} <= set(hrefs)
    baseline_links = [
        link
        for link in page["links"]
        if link["href"].endswith(("statistics.json", "constraints.json")) and "/" in link["href"]
    ]
    assert len(baseline_links) == 6  # the six baseline files, linked relatively
    assert all(link["exists"] for link in page["links"]), [
        link["href"] for link in page["links"] if not link["exists"]
    ]
    assert not UNROUNDED.findall(page["text"])
    with Image.open(page["screenshot"]) as shot:
        assert shot.width == WIDTH and shot.height > 600


def test_data_quality_charts_show_axes_bucket_edges_and_category_names(rendered):
    page, case = rendered["data"], rendered["case"]
    folder = rendered["pages"]["data"].parent
    summary = json.loads((folder / "summary.json").read_text())
    assert "Judged" in page["text"] and "Drift distances" in page["headings"]
    baseline = json.loads((case.run / "Preprocess" / "baseline" / "statistics.json").read_text())
    buckets = {
        f["name"]: f["numerical_statistics"]["distribution"]["kll"]["buckets"]
        for f in baseline["features"]
        if "numerical_statistics" in f
    }
    brightness = _chart(page, "brightness")
    # The share axis and the bucket edges, rounded for reading, are rendered text.
    assert "0%" in brightness["texts"] and "share" in brightness["texts"]
    for edge in (buckets["brightness"][0]["lower_bound"], buckets["brightness"][-1]["upper_bound"]):
        assert report_charts.number(edge, 3) in brightness["texts"]
    # Brightened traffic leaves the baseline's range: its own bucket, labelled, past the last edge.
    window = json.loads((folder / "statistics.json").read_text())
    [stats] = [f for f in window["features"] if f["name"] == "brightness"]
    top = buckets["brightness"][-1]["upper_bound"]
    above = [
        b for b in stats["numerical_statistics"]["distribution"]["kll"]["buckets"] if b["lower_bound"] >= top
    ]
    assert above and "above" in brightness["texts"]
    assert report_charts.number(above[-1]["upper_bound"], 3) in brightness["texts"]
    # Categorical charts name their values.
    for name in case.classes:
        assert name in _chart(page, "predicted_label")["texts"]
    assert "JPEG" in _chart(page, "format")["texts"]
    # Distances as rounded numbers, and the thresholds they are judged against.
    psi = summary["distances"]["brightness"]["psi"]
    assert f"PSI {report_charts.number(psi)} \u00b7 KS" in page["text"]
    assert "thresholds: PSI 0.2, KS 0.2, L-infinity 0.2" in page["text"]


def test_model_quality_page_compares_metrics_recall_and_names_confused_pairs(rendered):
    page, case = rendered["model"], rendered["case"]
    folder = rendered["pages"]["model"].parent
    summary = json.loads((folder / "summary.json").read_text())
    accuracy = summary["metrics"]["accuracy"]
    assert "Judged" in page["text"] and "Not judged" not in page["text"]
    bullets = _chart(page, "window metrics against baseline and threshold")
    assert {"accuracy", "macro F1"} <= set(bullets["texts"])
    assert any(
        t.startswith(f"{report_charts.percent(accuracy['window'])} (baseline") for t in bullets["texts"]
    )
    # The table has the numbers, and accuracy's two limits: the environment's and the baseline's.
    assert report_charts.number(accuracy["window"]) in page["text"]
    assert report_charts.number(accuracy["baseline"]) in page["text"]
    assert "0.7 (environment's accuracy threshold)" in page["text"]
    recall = _chart(page, "recall per breed, window and baseline")
    baseline = case.evaluation["per_class_metrics"]
    for name in case.classes:
        assert name in recall["texts"]
        expected = (
            f"window {report_charts.percent(summary['per_class_recall'][name])} \u00b7 "
            f"baseline {report_charts.percent(baseline[name]['recall'])}"
        )
        assert expected in recall["texts"]
    assert "Most confused breeds" in page["headings"]
    statistics = json.loads((folder / "statistics.json").read_text())
    matrix = statistics["multiclass_classification_metrics"]["confusion_matrix"]
    true, predicted = max(
        ((t, p) for t in matrix for p in matrix[t] if t != p), key=lambda pair: matrix[pair[0]][pair[1]]
    )
    assert f"{true}\t{predicted}\t{matrix[true][predicted]}" in page["text"]


def test_a_window_with_too_few_labels_says_it_was_not_judged(rendered):
    page = rendered["unjudged"]
    assert "Not judged" in page["text"] and "fewer than the 1000 needed" in page["text"]
    assert "Violations (0)" in page["headings"]
