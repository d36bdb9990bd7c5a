"""Charts as SVG text, drawn on the server: bars over time, bars by category, and a share bar.

Each chart is an `<svg role="img">` titled and described for screen readers, as wide as its card
(width 100%, its height following from the viewBox), a phone's too; the page shows the same figures
as a table beside it. A label is written whole: wrapped onto a second line, and only past that
shortened, its whole text then in a <title> of its own. Nothing here knows of HTTP or the
database: figures in, SVG text out.
"""

from __future__ import annotations

import itertools
import math
import textwrap
from collections.abc import Sequence
from html import escape

# Colours with a contrast of 4.5:1 or more on white (WCAG 2.1 AA), the text's 12:1.
INK = "#1f2933"
MUTED = "#52606d"
GRID = "#d9e2ec"
BAR = "#1d4ed8"
SHARES = ("#1d4ed8", "#b45309", "#047857", "#7c3aed", "#be123c", "#0f766e")
# Text size in viewBox units: drawn near 1:1 in a desktop card, never below ~9 px on a phone.
FONT = 13
# An average character of the sans-serif text, as a share of its size: a label's width is
# estimated from it (the server does not measure text), with room to spare.
CHAR = 0.62
LINE = FONT + 3
# A horizontal chart's labels take at most this share of its width; a longer label wraps.
LABEL_SHARE = 0.45
MOST_LINES = 2

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


def text_width(text: str, size: int = FONT) -> float:
    """The estimated width of `text` at `size`, in viewBox units."""
    return len(text) * size * CHAR


def wrapped(label: str, width: float, size: int = FONT, lines: int = MOST_LINES) -> list[str]:
    """`label` in lines of at most `width`: broken between words (within a word where it has to),
    and the last line shortened with … when even `lines` lines do not hold it."""
    if text_width(label, size) <= width + 0.5:
        return [label]
    per_line = max(4, int(width / (size * CHAR) + 0.01))
    broken = textwrap.wrap(label, per_line, break_on_hyphens=False) or [label]
    if len(broken) <= lines:
        return broken
    kept = broken[: lines - 1]
    rest = " ".join(broken[lines - 1 :])
    return [*kept, rest[: per_line - 1].rstrip() + "…"]


def _open(width: int, height: int, title: str, description: str, kind: str = "chart") -> str:
    chart_id = f"chart{next(_ids)}"
    # As wide as its container; the viewBox keeps its proportions, and its text with them.
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{kind}" width="100%" viewBox="0 0 {width} {height}" '
        f'role="img" aria-labelledby="{chart_id}-t {chart_id}-d" preserveAspectRatio="xMinYMin meet">'
        f'<title id="{chart_id}-t">{escape(title)}</title><desc id="{chart_id}-d">{escape(description)}</desc>'
    )


def _text(x: float, y: float, text: str, *, anchor: str = "start", size: int = FONT, fill: str = INK) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" fill="{fill}" text-anchor="{anchor}">{escape(text)}</text>'
    )


def _label(x: float, y: float, label: str, lines: list[str], *, anchor: str = "start", fill: str = INK) -> str:
    """A label on one line or several (tspans), its whole text in a <title> when it was shortened."""
    if lines == [label]:
        return _text(x, y, label, anchor=anchor, fill=fill)
    whole = f"<title>{escape(label)}</title>" if "".join(lines).replace(" ", "") != label.replace(" ", "") else ""
    spans = "".join(
        f'<tspan x="{x:.1f}" dy="{0 if index == 0 else LINE}">{escape(line)}</tspan>' for index, line in enumerate(lines)
    )
    return f'<text x="{x:.1f}" y="{y:.1f}" font-size="{FONT}" fill="{fill}" text-anchor="{anchor}">{whole}{spans}</text>'


def column_chart(
    points: Sequence[tuple[str, int]],
    *,
    title: str,
    description: str,
    height: int = 240,
    slot: int = 32,
    kind: str = "chart",
) -> str:
    """Vertical bars in order (days, say), `slot` units apart, the value axis from 0 to a round top.
    Labels are written under their bars as often as they fit side by side, the first and the last
    always, none cut at the edges."""
    left, right, top, bottom = 48, 8, 12, 30
    width = max(slot * 10, left + right + slot * len(points))
    svg = _open(width, height, title, description, kind)
    parts = [svg]
    plot_w, plot_h = width - left - right, height - top - bottom
    ceiling = nice_ceiling(max((value for _, value in points), default=0))
    for value in ticks(ceiling):
        y = top + plot_h - plot_h * value / ceiling
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="{GRID}" stroke-width="1"/>')
        parts.append(_text(left - 6, y + 4, str(value), anchor="end", fill=MUTED))
    if points:
        step = plot_w / len(points)
        bar_w = max(2.0, step * 0.7)
        widest = max(text_width(label) for label, _ in points) + 8
        every = max(1, math.ceil(widest / step))
        labelled = set(range(0, len(points), every))
        last = len(points) - 1
        # The last day always: the labelled one before it gives way when the two would touch.
        labelled -= {index for index in labelled if 0 < last - index < every}
        labelled.add(last)
        for index, (label, value) in enumerate(points):
            bar_h = plot_h * value / ceiling
            x = left + index * step + (step - bar_w) / 2
            y = top + plot_h - bar_h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{bar_h:.1f}" fill="{BAR}">'
                f"<title>{escape(label)}: {value}</title></rect>"
            )
            if index in labelled:
                centre, half = x + bar_w / 2, text_width(label) / 2
                if centre - half < 0:
                    parts.append(_text(0, height - 10, label, fill=MUTED))
                elif centre + half > width:
                    parts.append(_text(width, height - 10, label, anchor="end", fill=MUTED))
                else:
                    parts.append(_text(centre, height - 10, label, anchor="middle", fill=MUTED))
    parts.append(
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" stroke="{MUTED}" stroke-width="1"/>'
    )
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(points: Sequence[tuple[str, int]], *, title: str, description: str, width: int = 400) -> str:
    """Horizontal bars, one row per category in the order given, each labelled with its value; the
    label column as wide as the longest label needs, up to LABEL_SHARE, a longer label wrapped."""
    gap, bar_h, pad = 8, 14, 6
    label_w = min(width * LABEL_SHARE, max((text_width(label) for label, _ in points), default=0))
    value_w = max((text_width(str(value)) for _, value in points), default=0) + 10
    lines = [wrapped(label, label_w) for label, _ in points]
    rows = [max(bar_h + 2 * pad, LINE * len(lined) + 2 * pad - 3) for lined in lines]
    height = max(sum(rows), 28) + 4
    parts = [_open(width, height, title, description)]
    largest = max((value for _, value in points), default=0) or 1
    bars_x = label_w + gap
    plot_w = width - bars_x - value_w
    y = 2.0
    for (label, value), lined, row in zip(points, lines, rows, strict=True):
        middle = y + row / 2
        first_line = middle - (len(lined) - 1) * LINE / 2 + FONT * 0.35
        parts.append(_label(label_w, first_line, label, lined, anchor="end"))
        bar_w = plot_w * value / largest
        parts.append(
            f'<rect x="{bars_x:.1f}" y="{middle - bar_h / 2:.1f}" width="{max(bar_w, 1):.1f}" height="{bar_h}" fill="{BAR}">'
            f"<title>{escape(label)}: {value}</title></rect>"
        )
        parts.append(_text(bars_x + bar_w + 6, middle + FONT * 0.35, str(value)))
        y += row
    if not points:
        parts.append(_text(8, 20, "No data", fill=MUTED))
    parts.append("</svg>")
    return "".join(parts)


def share_bar(parts_of: Sequence[tuple[str, int]], *, title: str, description: str, width: int = 400) -> str:
    """One bar split in the parts' shares of their total, with a legend of counts and percents."""
    bar_h, legend_row, swatch = 28, LINE + 8, 14
    total = sum(value for _, value in parts_of)
    legends = [
        wrapped(f"{label}: {value} ({value / total if total else 0.0:.0%})", width - swatch - 8) for label, value in parts_of
    ]
    height = bar_h + 12 + sum(legend_row + LINE * (len(lined) - 1) for lined in legends) if legends else bar_h + 12 + legend_row
    parts = [_open(width, height, title, description)]
    x = 0.0
    y = bar_h + 12
    for index, ((label, value), lined) in enumerate(zip(parts_of, legends, strict=True)):
        colour = SHARES[index % len(SHARES)]
        share = value / total if total else 0.0
        if share:
            parts.append(
                f'<rect x="{x:.1f}" y="0" width="{width * share:.1f}" height="{bar_h}" fill="{colour}">'
                f"<title>{escape(label)}: {value}</title></rect>"
            )
        x += width * share
        parts.append(f'<rect x="0" y="{y}" width="{swatch}" height="{swatch}" fill="{colour}"/>')
        parts.append(_label(swatch + 8, y + 12, f"{label}: {value} ({share:.0%})", lined))
        y += legend_row + LINE * (len(lined) - 1)
    if not total:
        parts.append(f'<rect x="0" y="0" width="{width}" height="{bar_h}" fill="{GRID}"/>')
    parts.append("</svg>")
    return "".join(parts)
