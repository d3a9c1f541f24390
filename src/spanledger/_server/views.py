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

from .._model.rows import NO_TENANT_LABEL, UNATTRIBUTED_LABEL
from .._present.numbers import count as number
from .._present.numbers import money


def user_path(user_id: str) -> str:
    """``/users/<id>`` with the id escaped; the unattributed user has its label as id."""
    return "/users/" + quote(user_id or UNATTRIBUTED_LABEL, safe="")


def tenant_path(tenant_id: str) -> str:
    """``/tenants/<id>`` with the id escaped; the calls without a tenant have its label as id."""
    return "/tenants/" + quote(tenant_id or NO_TENANT_LABEL, safe="")


def delta(now: Decimal, before: Decimal | None) -> Markup:
    """The change of a cost against the previous window: ``▲ 12%`` (more spend), ``▼ 3%``, ``new``, or nothing
    when there is no previous window. Money stays exact; only the percentage is rounded."""
    if before is None:
        return Markup("")
    if before == 0:
        if now == 0:
            return Markup('<span class="delta flat" title="No spend in either window">–</span>')
        return Markup('<span class="delta up" title="No spend in the previous window">new</span>')
    change = (now - before) / before * 100
    arrow, tone = ("▲", "up") if change > 0 else (("▼", "down") if change < 0 else ("", "flat"))
    shown = f"{abs(change):.0f}%" if abs(change) >= 1 else f"{abs(change):.1f}%"
    title = escape(f"Previous window: {money(before)}")
    return Markup(f'<span class="delta {tone}" title="{title}">{arrow} {shown}</span>')


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


FLAG_MEANINGS: dict[str, str] = {
    "unpriced": "No price is known for this model (or it reported no usage): not counted in cost, never as free.",
    "usage_incomplete": "Its instrumentation cannot report cached or reasoning tokens: the cost may be overstated.",
    "no_usage": "The call reported no token usage (a stream read without its usage chunk).",
    "no_model": "The span named no model.",
    "input_excluded_cache": "The source counted input without cached tokens; they were added back.",
    "clock_skew": "Its start time lay far in the future and was replaced by the time it was received.",
    "cost_rounded": "The exact price had more than 12 decimals: rounded half-even to the stored precision.",
    "content_truncated": "The captured prompt or completion was cut to the stored maximum.",
}
"""What each flag on a call means, for a person (a flag not listed is shown as is)."""


def flag_meaning(flag: str) -> str:
    """One flag in words: ``invalid_tokens:<key>`` and ``<id>_truncated`` are families."""
    if flag in FLAG_MEANINGS:
        return FLAG_MEANINGS[flag]
    kind, _, detail = flag.partition(":")
    if kind == "invalid_tokens":
        return f"The token count {detail} was not a valid number: stored as 0."
    if kind == "coerced_tokens":
        return f"The token count {detail} was not an integer: converted."
    if flag.endswith("_truncated"):
        return f"The {flag.removesuffix('_truncated').replace('_', ' ')} was longer than 256 characters: cut."
    if flag.endswith("_cleaned"):
        return f"The {flag.removesuffix('_cleaned').replace('_', ' ')} held control characters: removed."
    return ""


def spark(points: Sequence[tuple[date, Decimal | int]], *, width: int = 120, height: int = 24) -> Markup:
    """A small inline bar series (no axes) for a table cell, with each day's value as a tooltip."""
    if not points:
        return Markup("")
    peak = max(Decimal(v) for _, v in points) or Decimal(1)
    step = width / len(points)
    bars = []
    for i, (day, value) in enumerate(points):
        h = float(Decimal(value) / peak) * (height - 2) if peak else 0.0
        shown = money(Decimal(value)) if isinstance(value, Decimal) else number(int(value))
        bars.append(
            f'<rect x="{i * step:.1f}" y="{height - max(h, 0.5):.1f}" width="{max(step * 0.8, 0.6):.1f}" '
            f'height="{max(h, 0.5):.1f}"><title>{day.isoformat()}: {escape(shown)}</title></rect>'
        )
    return Markup(
        f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="Daily series">{"".join(bars)}</svg>'
    )
