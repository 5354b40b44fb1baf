"""Report files of a monitoring run: statistics.json, constraint_violations.json, report.html.

The JSON files keep Model Monitor's shapes. The HTML report is one self-contained file (inline
CSS and SVG, no scripts, no external assets, so it opens from S3 or a laptop alike): whether the
window was judged, the headline numbers, the violations, the monitor's own sections (charts from
``report_charts``) and links to the other files of the run and to the baselines it used.
"""

from __future__ import annotations

import html
import json
import os
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

from . import monitor_io, monitor_window, report_charts

STATISTICS_FILE = "statistics.json"
VIOLATIONS_FILE = "constraint_violations.json"
REPORT_FILE = "report.html"
SUMMARY_FILE = "summary.json"
MAX_CATEGORICAL_BARS = 25
LONG_DECIMAL = re.compile(r"\d+\.\d{5,}(?:[eE][-+]?\d+)?")
DISTANCE_NAMES = {"psi": "PSI", "ks": "KS", "ks_p_value": "KS p-value", "l_infinity": "L-infinity"}


def violation(feature: str, check: str, description: str) -> dict[str, str]:
    """One data-quality entry of constraint_violations.json."""
    return {"feature_name": feature, "constraint_check_type": check, "description": description}


def metric_violation(metric: str, check: str, description: str) -> dict[str, str]:
    """One model-quality entry (Model Monitor names the metric, not a feature)."""
    return {"metric_name": metric, "constraint_check_type": check, "description": description}


def feature_section(
    name: str, histogram: Sequence[Mapping[str, Any]], distances: Mapping[str, Any], flagged: bool
) -> str:
    """One feature's heading, rounded distances and chart: columns on the bucket edges for a
    numeric feature, named horizontal bars for a categorical one. (The thresholds are stated once,
    above the distances table, which keeps this line as narrow as the chart.)"""
    numbers = " \u00b7 ".join(
        f"{DISTANCE_NAMES.get(key, key)} {report_charts.number(value)}"
        for key, value in distances.items()
        if value is not None
    )
    if histogram and "value" in histogram[0]:
        chart = categorical_chart(name, histogram)
    else:
        chart = report_charts.histogram_svg(histogram, name)
    mark = ' <strong class="bad">drift</strong>' if flagged else ""
    return (
        f'<section class="chart"><h3>{html.escape(name)}{mark}</h3>'
        f"<p>{html.escape(numbers) or 'no distance: no baseline or no values'}</p>{chart}</section>"
    )


def distribution_sections(
    histograms: Mapping[str, Sequence[Mapping[str, Any]]],
    distances: Mapping[str, Mapping[str, Any]],
    flagged: set[str],
    thresholds: Mapping[str, float],
) -> list[str]:
    """The data-quality page's body: the distances table, then one chart per feature."""
    charts = "".join(
        feature_section(name, histogram, distances.get(name, {}), name in flagged)
        for name, histogram in histograms.items()
    )
    key = report_charts.legend(
        (report_charts.BASELINE_COLOUR, "baseline"),
        (report_charts.WINDOW_COLOUR, "window"),
        (report_charts.OUTSIDE_COLOUR, "window values outside the baseline's range"),
    )
    return [
        distances_table(distances, thresholds, flagged),
        f'<h2>Distributions</h2>{key}<div class="charts">{charts}</div>',
    ]


def categorical_chart(name: str, histogram: Sequence[Mapping[str, Any]]) -> str:
    """The values whose share moved most first (they decide the L-infinity distance), at most
    MAX_CATEGORICAL_BARS of them; statistics.json has every value."""
    moved = sorted(histogram, key=lambda b: (-abs(b["window"] - b["baseline"]), str(b["value"])))
    shown = moved[:MAX_CATEGORICAL_BARS]
    rows = [(str(b["value"]), b["baseline"], b["window"]) for b in shown]
    note = (
        f'<p class="note">the {len(shown)} of {len(histogram)} values whose share moved most; '
        f"all of them are in {STATISTICS_FILE}</p>"
        if len(histogram) > len(shown)
        else ""
    )
    return note + report_charts.hbar_svg(rows, f"{name}: share of each value, baseline and window")


def distances_table(
    distances: Mapping[str, Mapping[str, Any]], thresholds: Mapping[str, float], flagged: set[str]
) -> str:
    """Every feature's distances in one table, rounded, drifted features marked."""
    columns = ("psi", "ks", "ks_p_value", "l_infinity")
    head = "".join(f"<th>{DISTANCE_NAMES[c]}</th>" for c in columns)
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td>"
        + "".join(f'<td class="num">{report_charts.number(d.get(c))}</td>' for c in columns)
        + f"<td>{'<strong class=bad>drift</strong>' if name in flagged else ''}</td></tr>"
        for name, d in distances.items()
    )
    limits = ", ".join(f"{DISTANCE_NAMES.get(k, k)} {report_charts.number(v)}" for k, v in thresholds.items())
    return (
        f"<h2>Drift distances</h2><p>thresholds: {html.escape(limits)}</p>"
        f"<table><tr><th>feature</th>{head}<th></th></tr>{rows}</table>"
    )


def readable(text: str) -> str:
    """A violation's description with long decimals rounded: the JSON file keeps Model Monitor's
    sentences with every digit ("distance: 0.2511111111111112"), the page shows 0.2511."""
    return LONG_DECIMAL.sub(lambda match: report_charts.number(float(match.group())), text)


def _cell(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {_cell(v)}" for k, v in value.items()) or "none"
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v) for v in value) or "none"
    return report_charts.number(value)


def files_section(report_location: str, baselines: Mapping[str, str]) -> str:
    """Links to the run's other files (same folder) and to the baselines it used: a relative link
    where report and baseline are both on this machine, the URI as text where they are in S3."""
    own = "".join(
        f'<li><a href="{name}">{name}</a> {html.escape(what)}</li>'
        for name, what in (
            (STATISTICS_FILE, "the window's statistics (Model Monitor format)"),
            (VIOLATIONS_FILE, "the violations (Model Monitor format)"),
            (SUMMARY_FILE, "counts, distances, thresholds and baselines of this run"),
        )
    )
    here = _local_dir(report_location)
    rows = []
    for name, location in baselines.items():
        target = _local_file(location) if name != "source" else None
        if target is not None and here is not None:
            href = urllib.parse.quote(os.path.relpath(target, here).replace(os.sep, "/"))
            shown = f'<a href="{href}">{html.escape(location)}</a>'
        else:
            shown = f"<code>{html.escape(location)}</code>"
        rows.append(f"<tr><td>{html.escape(name.replace('_', ' '))}</td><td>{shown}</td></tr>")
    return f"<h2>Files</h2><ul>{own}</ul><h3>Baselines used</h3><table>{''.join(rows)}</table>"


def _local_dir(location: str) -> str | None:
    try:
        path = monitor_io.local_path(location)
    except monitor_io.MonitorDataError:
        return None
    return os.path.abspath(path) if path is not None else None


def _local_file(location: str) -> str | None:
    if not location or (":" in location and not location.startswith("s3://")):
        return None
    return _local_dir(location)


STYLE = (
    "body{font-family:sans-serif;margin:1.5em;color:#222;max-width:1400px}"
    "h1{font-size:1.5em;margin-bottom:.2em}h2{margin-top:1.4em;border-bottom:1px solid #ddd}"
    "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;"
    "text-align:left;vertical-align:top}td.num{text-align:right;font-variant-numeric:tabular-nums}"
    ".bad{color:#c62828}.note{color:#555;font-size:.9em;margin:.2em 0}.legend{margin:.3em 0}"
    ".key{display:inline-block;width:.8em;height:.8em;margin:0 .35em 0 1em;vertical-align:-.05em}"
    ".verdict{padding:.5em .8em;border-radius:4px;display:inline-block}"
    ".judged{background:#e8f5e9;border:1px solid #81c784}"
    ".unjudged{background:#fff8e1;border:1px solid #ffb300}"
    ".charts{display:flex;flex-wrap:wrap;gap:0 2em}.chart{margin:0 0 1em 0;max-width:100%;overflow-x:auto}"
    "code{word-break:break-all}"
)


def render_html(
    title: str,
    summary: Mapping[str, Any],
    violations: Sequence[Mapping[str, str]],
    sections: Sequence[str],
    *,
    subtitle: str = "",
    verdict: tuple[bool, str] | None = None,
    files: str = "",
) -> str:
    """The whole page: title, verdict (judged or not, and why), headline numbers, violations,
    the monitor's sections, and the links to the run's files."""
    rows = "".join(
        f"<tr><td>{html.escape(v.get('feature_name', v.get('metric_name', '')))}</td>"
        f"<td>{html.escape(v['constraint_check_type'])}</td>"
        f"<td>{html.escape(readable(v['description']))}</td></tr>"
        for v in violations
    )
    table = (
        f"<table><tr><th>feature / metric</th><th>check</th><th>description</th></tr>{rows}</table>"
        if violations
        else "<p>No violations.</p>"
    )
    summary_rows = "".join(
        f"<tr><td>{html.escape(str(k).replace('_', ' '))}</td>"
        f"<td>{html.escape(report_charts.percent(v) if k.endswith('coverage') else _cell(v))}</td></tr>"
        for k, v in summary.items()
    )
    judged = ""
    if verdict is not None:
        ok, why = verdict
        word = "Judged" if ok else "Not judged"
        judged = (
            f'<p class="verdict {"judged" if ok else "unjudged"}"><strong>{word}</strong>: '
            f"{html.escape(why)}</p>"
        )
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        f'<p class="note">{html.escape(subtitle)}</p>{judged}'
        f"<table>{summary_rows}</table><h2>Violations ({len(violations)})</h2>{table}"
        f"{''.join(sections)}{files}</body></html>\n"
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
    verdict: tuple[bool, str] | None = None,
) -> list[str]:
    """The four report files of one monitor run under ``<output>/yyyy/mm/dd/hh/<run id>`` (both
    monitors write the same set the same way)."""
    described = window.describe()
    # The summary names the run that wrote it, as its folder does.
    summary["run_id"] = run_id
    prefix = monitor_window.report_prefix(output_uri, window, run_id)
    page = render_html(
        f"{monitor_title}: {subject}",
        {key: summary[key] for key in headline_keys},
        violations,
        sections,
        subtitle=f"window {described['start']} to {described['end']} \u00b7 run {run_id}",
        verdict=verdict,
        files=files_section(prefix, summary.get("baselines", {})),
    )
    return write_reports(
        prefix,
        {
            STATISTICS_FILE: statistics,
            VIOLATIONS_FILE: {"violations": list(violations)},
            REPORT_FILE: page,
            SUMMARY_FILE: summary,
        },
    )
