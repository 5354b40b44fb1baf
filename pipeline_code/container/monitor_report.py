"""Report files of a monitoring run: statistics.json, constraint_violations.json, report.html.

The JSON files keep Model Monitor's shapes. The HTML report is one self-contained file (inline
SVG, no scripts, no external assets, so it opens from S3 or a laptop alike) with, per feature,
baseline-vs-window bars and the drift distances, and the violations at the top.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

import monitor_io
import monitor_window

STATISTICS_FILE = "statistics.json"
VIOLATIONS_FILE = "constraint_violations.json"
REPORT_FILE = "report.html"
SUMMARY_FILE = "summary.json"
BAR_WIDTH = 16
CHART_HEIGHT = 80
BASELINE_COLOUR = "#8da0cb"
WINDOW_COLOUR = "#fc8d62"
MAX_CATEGORICAL_BARS = 20


def violation(feature: str, check: str, description: str) -> dict[str, str]:
    """One data-quality entry of constraint_violations.json."""
    return {"feature_name": feature, "constraint_check_type": check, "description": description}


def metric_violation(metric: str, check: str, description: str) -> dict[str, str]:
    """One model-quality entry (Model Monitor names the metric, not a feature)."""
    return {"metric_name": metric, "constraint_check_type": check, "description": description}


def _svg_bars(bars: Sequence[Mapping[str, Any]], labels: Sequence[str]) -> str:
    """Paired bars (baseline, window) per bucket, heights relative to the tallest share."""
    if not bars:
        return "<p><em>no baseline distribution</em></p>"
    tallest = max(max(b["baseline"], b["window"]) for b in bars) or 1.0
    width = len(bars) * (2 * BAR_WIDTH + 6) + 4
    parts = [f'<svg width="{width}" height="{CHART_HEIGHT + 4}" role="img">']
    for i, (bar, label) in enumerate(zip(bars, labels, strict=True)):
        x = 2 + i * (2 * BAR_WIDTH + 6)
        for offset, key, colour in ((0, "baseline", BASELINE_COLOUR), (BAR_WIDTH, "window", WINDOW_COLOUR)):
            height = round(CHART_HEIGHT * bar[key] / tallest, 1)
            parts.append(
                f'<rect x="{x + offset}" y="{CHART_HEIGHT - height + 2}" width="{BAR_WIDTH - 1}" '
                f'height="{height}" fill="{colour}"><title>{html.escape(label)} {key}: '
                f"{bar[key]:.3f}</title></rect>"
            )
    parts.append("</svg>")
    return "".join(parts)


def feature_section(
    name: str, histogram: Sequence[Mapping[str, Any]], distances: Mapping[str, Any], flagged: bool
) -> str:
    """One feature's heading, distances and chart."""
    if histogram and "value" in histogram[0]:
        shown = list(histogram[:MAX_CATEGORICAL_BARS])
        labels = [str(b["value"]) for b in shown]
    else:
        shown = list(histogram)
        labels = [f"{b['lower_bound']:.3g}..{b['upper_bound']:.3g}" for b in shown]
    numbers = ", ".join(
        f"{key} {value:.4f}" if isinstance(value, float) else f"{key} {value}"
        for key, value in distances.items()
        if value is not None
    )
    mark = ' <strong class="bad">drift</strong>' if flagged else ""
    return (
        f"<section><h3>{html.escape(name)}{mark}</h3><p>{html.escape(numbers)}</p>"
        f"{_svg_bars(shown, labels)}</section>"
    )


def render_html(
    title: str, summary: Mapping[str, Any], violations: Sequence[Mapping[str, str]], sections: Sequence[str]
) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(v.get('feature_name', v.get('metric_name', '')))}</td>"
        f"<td>{html.escape(v['constraint_check_type'])}</td><td>{html.escape(v['description'])}</td></tr>"
        for v in violations
    )
    table = (
        f"<table><tr><th>feature / metric</th><th>check</th><th>description</th></tr>{rows}</table>"
        if violations
        else "<p>No violations.</p>"
    )
    summary_rows = "".join(
        f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(json.dumps(v))}</td></tr>"
        for k, v in summary.items()
    )
    legend = (
        f'<p><span style="color:{BASELINE_COLOUR}">&#9632;</span> baseline '
        f'<span style="color:{WINDOW_COLOUR}">&#9632;</span> window (shares per bucket)</p>'
    )
    style = (
        "body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}.bad{color:#c00}"
        "section{display:inline-block;vertical-align:top;margin:0 1.5em 1em 0}"
    )
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<table>{summary_rows}</table><h2>Violations ({len(violations)})</h2>{table}"
        f"<h2>Distributions</h2>{legend}{''.join(sections)}</body></html>\n"
    )


def write_reports(prefix: str, files: Mapping[str, str | bytes | Mapping[str, Any]]) -> list[str]:
    """Write each named file under ``prefix``; JSON documents are pretty-printed. Returns locations."""
    written = []
    for name, content in files.items():
        if isinstance(content, Mapping):
            data = (json.dumps(content, indent=2, sort_keys=True) + "\n").encode()
            content_type = "application/json"
        else:
            data = content.encode() if isinstance(content, str) else content
            content_type = (
                "text/html; charset=utf-8" if name.endswith(".html") else "application/octet-stream"
            )
        location = monitor_io.join(prefix, name)
        monitor_io.write_bytes(location, data, content_type)
        written.append(location)
    return written


def write_run_reports(
    *,
    monitor_title: str,
    subject: str,
    output_uri: str,
    window: monitor_window.Window,
    run_id: str,
    summary: dict[str, Any],
    headline_keys: Sequence[str],
    statistics: Mapping[str, Any],
    violations: Sequence[Mapping[str, str]],
    sections: Sequence[str],
) -> list[str]:
    """The four report files of one monitor run under ``<output>/yyyy/mm/dd/hh/<run id>`` (both
    monitors write the same set the same way)."""
    described = window.describe()
    # The summary names the run that wrote it, as its folder does.
    summary["run_id"] = run_id
    page = render_html(
        f"{monitor_title}: {subject} {described['start']} - {described['end']}",
        {key: summary[key] for key in headline_keys},
        violations,
        sections,
    )
    return write_reports(
        monitor_window.report_prefix(output_uri, window, run_id),
        {
            STATISTICS_FILE: statistics,
            VIOLATIONS_FILE: {"violations": list(violations)},
            REPORT_FILE: page,
            SUMMARY_FILE: summary,
        },
    )
