"""Charts as SVG text, drawn on the server: bars over time, bars by category, and a share bar.

Each chart is an `<svg role="img">` titled and described for screen readers, scaled by its viewBox
to the width it is given (a phone's too); the page shows the same figures as a table beside it.
Nothing here knows of HTTP or the database: figures in, SVG text out.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from html import escape

# Colours with a contrast of 4.5:1 or more on white (WCAG 2.1 AA), the text's 12:1.
INK = "#1f2933"
MUTED = "#52606d"
GRID = "#d9e2ec"
BAR = "#1d4ed8"
SHARES = ("#1d4ed8", "#b45309", "#047857", "#7c3aed", "#be123c", "#0f766e")

_ids = itertools.count(1)


def nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5 × 10^n at or above `value` (at least 1): the top of a value axis."""
    if value <= 1:
        return 1
    magnitude = 10 ** int(math.floor(math.log10(value)))
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def ticks(ceiling: int) -> list[int]:
    """Whole-number gridlines from 0 to `ceiling` (a nice_ceiling): counts have no halves."""
    if ceiling <= 5:
        return list(range(ceiling + 1))
    step = ceiling // (4 if str(ceiling)[0] == "2" else 5)
    return list(range(0, ceiling + 1, step))


def _open(width: int, height: int, title: str, description: str, kind: str = "chart") -> tuple[str, str]:
    chart_id = f"chart{next(_ids)}"
    # Drawn at its own size (12 px text), and scaled down, never up, to a narrower column.
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{kind}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" '
        f'role="img" aria-labelledby="{chart_id}-t {chart_id}-d" preserveAspectRatio="xMinYMin meet">'
        f'<title id="{chart_id}-t">{escape(title)}</title><desc id="{chart_id}-d">{escape(description)}</desc>'
    )
    return chart_id, head


def _text(x: float, y: float, text: str, *, anchor: str = "start", size: int = 12, fill: str = INK) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" fill="{fill}" text-anchor="{anchor}">{escape(text)}</text>'
    )


def column_chart(
    points: Sequence[tuple[str, int]], *, title: str, description: str, label_every: int = 5, height: int = 220
) -> str:
    """Vertical bars in order (days, say), the value axis from 0 to a round top; every
    `label_every`-th label is written under its bar, the last always."""
    left, right, top, bottom = 44, 8, 12, 28
    width = max(320, left + right + 22 * len(points))
    _, svg = _open(width, height, title, description, "chart chart-wide")
    parts = [svg]
    plot_w, plot_h = width - left - right, height - top - bottom
    ceiling = nice_ceiling(max((value for _, value in points), default=0))
    for value in ticks(ceiling):
        y = top + plot_h - plot_h * value / ceiling
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="{GRID}" stroke-width="1"/>')
        parts.append(_text(left - 6, y + 4, str(value), anchor="end", size=11, fill=MUTED))
    if points:
        slot = plot_w / len(points)
        bar_w = max(2.0, slot * 0.7)
        for index, (label, value) in enumerate(points):
            bar_h = plot_h * value / ceiling
            x = left + index * slot + (slot - bar_w) / 2
            y = top + plot_h - bar_h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{bar_h:.1f}" fill="{BAR}">'
                f"<title>{escape(label)}: {value}</title></rect>"
            )
            if index % label_every == 0 or index == len(points) - 1:
                parts.append(_text(x + bar_w / 2, height - 10, label, anchor="middle", size=11, fill=MUTED))
    parts.append(
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" stroke="{MUTED}" stroke-width="1"/>'
    )
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(points: Sequence[tuple[str, int]], *, title: str, description: str, width: int = 400) -> str:
    """Horizontal bars, one row per category in the order given, each labelled with its value."""
    row, label_w, value_w = 26, 150, 48
    height = max(row, row * len(points)) + 8
    _, svg = _open(width, height, title, description)
    parts = [svg]
    largest = max((value for _, value in points), default=0) or 1
    plot_w = width - label_w - value_w
    for index, (label, value) in enumerate(points):
        y = 4 + index * row
        bar_w = plot_w * value / largest
        shown = label if len(label) <= 20 else label[:19] + "…"
        parts.append(_text(label_w - 8, y + 17, shown, anchor="end"))
        parts.append(
            f'<rect x="{label_w}" y="{y + 4}" width="{max(bar_w, 1):.1f}" height="{row - 8}" fill="{BAR}">'
            f"<title>{escape(label)}: {value}</title></rect>"
        )
        parts.append(_text(label_w + bar_w + 6, y + 17, str(value), fill=INK))
    if not points:
        parts.append(_text(8, 20, "No data", fill=MUTED))
    parts.append("</svg>")
    return "".join(parts)


def share_bar(parts_of: Sequence[tuple[str, int]], *, title: str, description: str, width: int = 400) -> str:
    """One bar split in the parts' shares of their total, with a legend of counts and percents."""
    bar_h, legend_row = 28, 22
    height = bar_h + 12 + legend_row * max(1, len(parts_of))
    _, svg = _open(width, height, title, description)
    parts = [svg]
    total = sum(value for _, value in parts_of)
    x = 0.0
    for index, (label, value) in enumerate(parts_of):
        colour = SHARES[index % len(SHARES)]
        share = value / total if total else 0.0
        if share:
            parts.append(
                f'<rect x="{x:.1f}" y="0" width="{width * share:.1f}" height="{bar_h}" fill="{colour}">'
                f"<title>{escape(label)}: {value}</title></rect>"
            )
        x += width * share
        y = bar_h + 12 + index * legend_row
        parts.append(f'<rect x="0" y="{y}" width="14" height="14" fill="{colour}"/>')
        parts.append(_text(22, y + 12, f"{label}: {value} ({share:.0%})"))
    if not total:
        parts.append(f'<rect x="0" y="0" width="{width}" height="{bar_h}" fill="{GRID}"/>')
    parts.append("</svg>")
    return "".join(parts)
