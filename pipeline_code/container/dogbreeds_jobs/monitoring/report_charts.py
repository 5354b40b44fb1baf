"""Inline SVG charts and number formatting for the monitoring reports (no scripts, no fonts to load).

Every chart carries its numbers as text (axis ticks, bucket edges, category names, values), so the
page reads without hovering and a browser test can find them. Shares are fractions (0..1).
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

BASELINE_COLOUR = "#7b8fc4"
WINDOW_COLOUR = "#f08a4b"
OUTSIDE_COLOUR = "#c62828"
THRESHOLD_COLOUR = "#c62828"
AXIS_COLOUR = "#555"
GRID_COLOUR = "#e3e3e3"
FONT = 'font-family="sans-serif" font-size="11"'
# Vertical histogram geometry (pixels).
GROUP_WIDTH = 30
BAR_WIDTH = 12
PLOT_HEIGHT = 120
LEFT = 48
TOP = 24
BOTTOM = 70
# Horizontal bars: one row per category.
ROW_HEIGHT = 20
BAR_AREA = 260
BULLET_AREA = 400
MAX_LABEL_CHARS = 32
CHAR_WIDTH = 6.4  # average width of an 11 px sans-serif character, for sizing label columns


def number(value: Any, digits: int = 4) -> str:
    """A number as a person reads it: 4 significant digits (PSI 0.6912, not 0.691234567),
    thousands separated, tiny values (p-values) in exponent form; None as a dash."""
    if value is None:
        return "\u2013"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if not isinstance(value, float):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    if value.is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    magnitude = abs(value)
    if magnitude >= 10**digits:
        return f"{value:,.0f}"
    if magnitude < 10 ** -(digits - 1):
        return f"{value:.{max(digits - 2, 1)}e}"
    return f"{value:.{digits}g}"


def percent(share: float | None) -> str:
    if share is None:
        return "\u2013"
    return f"{share * 100:.1f}%"


def _nice_step(top: float, ticks: int = 4) -> float:
    """A round step (1, 2, 2.5 or 5 times a power of ten) giving at most ``ticks`` intervals."""
    if top <= 0:
        return 1.0
    raw = top / ticks
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if factor * power >= raw:
            return factor * power
    return 10 * power


def _svg_open(width: float, height: float, label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="{html.escape(label)}" {FONT}>'
        f"<title>{html.escape(label)}</title>"
    )


def _text(x: float, y: float, text: str, anchor: str = "middle", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{extra}>{html.escape(text)}</text>'


def histogram_svg(buckets: Sequence[Mapping[str, Any]], feature: str) -> str:
    """Baseline and window shares per bucket as paired columns, with a share axis, the bucket
    edges under the columns, and window values outside the baseline's range in their own colour."""
    if not buckets:
        return "<p><em>no values in the window and no baseline distribution</em></p>"
    tallest = max(max(b["baseline"], b["window"]) for b in buckets) or 1.0
    step = _nice_step(tallest)
    top = step * math.ceil(tallest / step - 1e-9)
    width = LEFT + len(buckets) * GROUP_WIDTH + 24
    height = TOP + PLOT_HEIGHT + BOTTOM
    base_y = TOP + PLOT_HEIGHT
    parts = [_svg_open(width, height, f"{feature}: share of values per bucket, baseline and window")]
    tick = 0.0
    while tick <= top + 1e-12:
        y = base_y - PLOT_HEIGHT * tick / top
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{width - 20}" y2="{y:.1f}" stroke="{GRID_COLOUR}"/>'
        )
        parts.append(_text(LEFT - 5, y + 4, f"{tick * 100:.{0 if step >= 0.01 else 1}f}%", "end"))
        tick += step
    parts.append(
        _text(
            12, TOP + PLOT_HEIGHT / 2, "share", extra=f' transform="rotate(-90 12 {TOP + PLOT_HEIGHT / 2})"'
        )
    )
    for i, bucket in enumerate(buckets):
        x = LEFT + i * GROUP_WIDTH + (GROUP_WIDTH - 2 * BAR_WIDTH) / 2
        outside = bucket.get("outside")
        window_colour = OUTSIDE_COLOUR if outside else WINDOW_COLOUR
        for offset, key, colour in ((0, "baseline", BASELINE_COLOUR), (BAR_WIDTH, "window", window_colour)):
            bar = PLOT_HEIGHT * bucket[key] / top
            tip = (
                f"{number(bucket['lower_bound'], 3)} to {number(bucket['upper_bound'], 3)}, {key}: "
                f"{percent(bucket[key])}"
            )
            if key == "window" and "window_count" in bucket:
                tip += f" ({number(bucket['window_count'])} values)"
            parts.append(
                f'<rect x="{x + offset:.1f}" y="{base_y - bar:.1f}" width="{BAR_WIDTH - 1}" '
                f'height="{bar:.1f}" fill="{colour}"><title>{html.escape(tip)}</title></rect>'
            )
        if outside:
            parts.append(_text(x + BAR_WIDTH, TOP - 8, str(outside), extra=f' fill="{OUTSIDE_COLOUR}"'))
    parts.append(
        f'<line x1="{LEFT}" y1="{base_y}" x2="{LEFT + len(buckets) * GROUP_WIDTH}" y2="{base_y}" '
        f'stroke="{AXIS_COLOUR}"/>'
    )
    edges = [buckets[0]["lower_bound"]] + [b["upper_bound"] for b in buckets]
    for i, edge in enumerate(edges):
        x = LEFT + i * GROUP_WIDTH
        parts.append(f'<line x1="{x}" y1="{base_y}" x2="{x}" y2="{base_y + 4}" stroke="{AXIS_COLOUR}"/>')
        parts.append(
            _text(
                x + 3, base_y + 14, number(edge, 3), "end", f' transform="rotate(-45 {x + 3} {base_y + 14})"'
            )
        )
    parts.append(_text(LEFT + len(buckets) * GROUP_WIDTH / 2, height - 4, f"{feature} (bucket edges)"))
    parts.append("</svg>")
    return "".join(parts)


def _short(label: str) -> str:
    return label if len(label) <= MAX_LABEL_CHARS else label[: MAX_LABEL_CHARS - 1] + "\u2026"


def hbar_svg(
    rows: Sequence[tuple[str, float | None, float | None]],
    title: str,
    *,
    scale_max: float | None = None,
    baseline_name: str = "baseline",
    window_name: str = "window",
) -> str:
    """One row per category (label, baseline share, window share): names on the left, paired
    horizontal bars, and both values as text at the end of the row. Long names are shortened,
    the full name kept in the row's tooltip."""
    if not rows:
        return "<p><em>no values</em></p>"
    label_width = max(CHAR_WIDTH * max(len(_short(r[0])) for r in rows) + 12, 60)
    top = scale_max or max(max(r[1] or 0.0, r[2] or 0.0) for r in rows) or 1.0
    step = _nice_step(top)
    top = step * math.ceil(top / step - 1e-9)
    value_width = 200
    width = label_width + BAR_AREA + value_width
    axis_y = 18
    height = axis_y + 6 + len(rows) * ROW_HEIGHT + 4
    parts = [_svg_open(width, height, title)]
    tick = 0.0
    while tick <= top + 1e-12:
        x = label_width + BAR_AREA * tick / top
        parts.append(
            f'<line x1="{x:.1f}" y1="{axis_y}" x2="{x:.1f}" y2="{height - 4}" stroke="{GRID_COLOUR}"/>'
        )
        parts.append(_text(x, axis_y - 5, f"{tick * 100:.{0 if step >= 0.01 else 1}f}%"))
        tick += step
    for i, (label, baseline, window) in enumerate(rows):
        y = axis_y + 6 + i * ROW_HEIGHT
        tip = f"{label}: {window_name} {percent(window)}, {baseline_name} {percent(baseline)}"
        parts.append(f"<g><title>{html.escape(tip)}</title>")
        parts.append(_text(label_width - 6, y + 12, _short(label), "end"))
        for offset, value, colour in ((1, baseline, BASELINE_COLOUR), (9, window, WINDOW_COLOUR)):
            if value is not None:
                parts.append(
                    f'<rect x="{label_width}" y="{y + offset}" width="{BAR_AREA * value / top:.1f}" '
                    f'height="7" fill="{colour}"/>'
                )
        parts.append(
            _text(
                label_width + BAR_AREA + 8,
                y + 12,
                f"{window_name} {percent(window)} \u00b7 {baseline_name} {percent(baseline)}",
                "start",
            )
        )
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def bullet_svg(rows: Sequence[tuple[str, float | None, float | None, float | None]], title: str) -> str:
    """Metrics on a 0-100% scale: (name, window, baseline, threshold). The window is a bar, the
    baseline a black tick and the threshold a red line, so "below the line" reads at a glance."""
    label_width = max(CHAR_WIDTH * max(len(r[0]) for r in rows) + 12, 60)
    area = BULLET_AREA
    width = label_width + area + 230
    axis_y = 18
    row = 30
    height = axis_y + len(rows) * row + 8
    parts = [_svg_open(width, height, title)]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = label_width + area * tick
        parts.append(
            f'<line x1="{x:.1f}" y1="{axis_y}" x2="{x:.1f}" y2="{height - 6}" stroke="{GRID_COLOUR}"/>'
        )
        parts.append(_text(x, axis_y - 5, f"{tick * 100:.0f}%"))
    for i, (name, window, baseline, threshold) in enumerate(rows):
        y = axis_y + 4 + i * row
        parts.append(_text(label_width - 6, y + 15, name, "end"))
        parts.append(f'<rect x="{label_width}" y="{y + 5}" width="{area}" height="14" fill="#f2f2f2"/>')
        if window is not None:
            parts.append(
                f'<rect x="{label_width}" y="{y + 5}" width="{area * window:.1f}" height="14" '
                f'fill="{WINDOW_COLOUR}"><title>window {number(window)}</title></rect>'
            )
        if baseline is not None:
            x = label_width + area * baseline
            parts.append(
                f'<rect x="{x - 1:.1f}" y="{y + 1}" width="3" height="22" fill="#222">'
                f"<title>baseline {number(baseline)}</title></rect>"
            )
        parts.append(
            _text(
                label_width + area + 10,
                y + 16,
                f"{percent(window)} (baseline {percent(baseline)}, "
                + (f"threshold {percent(threshold)})" if threshold is not None else "no threshold)"),
                "start",
            )
        )
        if threshold is not None:
            x = label_width + area * threshold
            parts.append(
                f'<line x1="{x:.1f}" y1="{y}" x2="{x:.1f}" y2="{y + 24}" stroke="{THRESHOLD_COLOUR}" '
                f'stroke-width="2" stroke-dasharray="3 2"><title>threshold {number(threshold)}</title></line>'
            )
    parts.append("</svg>")
    return "".join(parts)


def legend(*entries: tuple[str, str]) -> str:
    """A line of colour keys: (colour, what it means). The keys are styled boxes, not a glyph,
    because a page's font may have no square character."""
    return (
        '<p class="legend">'
        + "".join(f'<span class="key" style="background:{c}"></span>{html.escape(t)}' for c, t in entries)
        + "</p>"
    )
