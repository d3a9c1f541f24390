"""The dashboard's own presentation: links, and inline SVG charts (numbers and money are formatted by
:mod:`spanledger._present.numbers`, as in the CLI).

Chart geometry (pixels) is the only place a ratio of money becomes a float.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from html import escape
from urllib.parse import quote, urlencode

from markupsafe import Markup

from .._model.rows import UNATTRIBUTED_LABEL
from .._present.numbers import count as number
from .._present.numbers import money


def user_path(user_id: str) -> str:
    """``/users/<id>`` with the id escaped; the unattributed user has its label as id."""
    return "/users/" + quote(user_id or UNATTRIBUTED_LABEL, safe="")


def query(pairs: Sequence[tuple[str, str]]) -> str:
    kept = [(k, v) for k, v in pairs if v not in ("", None)]
    return "?" + urlencode(kept) if kept else ""


def bar_chart(
    points: Sequence[tuple[date, Decimal | int]], *, money_values: bool, label: str, width: int = 760, height: int = 200
) -> Markup:
    """An accessible inline SVG bar chart, one bar per day with a tooltip (``<title>``) each."""
    if not points:
        return Markup('<p class="empty">No data in this window.</p>')
    left, bottom, top = 64, 26, 12
    plot_w, plot_h = width - left - 8, height - bottom - top
    peak = max(Decimal(v) for _, v in points) or Decimal(1)
    step = plot_w / len(points)
    bar_w = max(1.0, step * 0.72)
    fmt = money if money_values else (lambda v: number(int(v)))
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}" '
        'xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(label)}</title>",
    ]
    for fraction in (Decimal(0), Decimal("0.5"), Decimal(1)):
        y = top + plot_h - float(fraction) * plot_h
        tick = fmt(peak * fraction if money_values else int(peak * fraction))  # type: ignore[arg-type]
        parts.append(f'<line class="grid" x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="axis" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(tick)}</text>')
    for i, (day, value) in enumerate(points):
        h = float(Decimal(value) / peak) * plot_h if peak else 0.0
        x = left + i * step + (step - bar_w) / 2
        shown = money(Decimal(value)) if money_values else number(int(value))
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w:.1f}" height="{max(h, 0.5):.1f}">'
            f"<title>{day.isoformat()}: {escape(shown)}</title></rect>"
        )
    every = max(1, len(points) // 6)
    for i, (day, _) in enumerate(points):
        if i % every == 0 or i == len(points) - 1:
            x = left + i * step + step / 2
            anchor = "end" if x > width - 40 else "middle"  # keep the last label inside the chart
            x = min(x, width - 8.0) if anchor == "end" else x
            parts.append(
                f'<text class="axis" x="{x:.1f}" y="{height - 8}" text-anchor="{anchor}">{day.strftime("%b %d")}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def fill_days(
    points: Sequence[tuple[date, Decimal | int]], start: datetime | None, end: datetime | None
) -> list[tuple[date, Decimal | int]]:
    """One point per day of the window (zero where nothing happened), so a chart shows the timeline."""
    if not points:
        return []
    values = dict(points)
    first = start.date() if start else min(values)
    last = (end - timedelta(microseconds=1)).date() if end else max(datetime.now(UTC).date(), max(values))
    if (last - first).days > 400 or last < first:
        return list(points)
    zero = Decimal(0) if isinstance(points[0][1], Decimal) else 0
    return [(d, values.get(d, zero)) for d in (first + timedelta(days=i) for i in range((last - first).days + 1))]


def share_bar(part: Decimal, whole: Decimal, width: int = 80) -> Markup:
    """A small inline bar showing ``part`` as a share of ``whole`` (cost share in tables)."""
    fraction = float(part / whole) if whole else 0.0
    return Markup(
        f'<svg class="share" width="{width}" height="6" aria-hidden="true"><rect class="share-bg" width="{width}" '
        f'height="6" rx="3"/><rect class="share-fg" width="{max(fraction * width, 1 if part else 0):.1f}" '
        'height="6" rx="3"/></svg>'
    )
