"""How numbers, money and times read — one formatter each, for the CLI's tables and the dashboard alike.

Money is formatted from ``Decimal`` without ever passing through a float. JSON and CSV never use these:
they carry the exact decimal string (:func:`decimal_string`) and ISO-8601 UTC (:func:`iso`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

_CENT = Decimal("0.01")
_TEN_THOUSANDTH = Decimal("0.0001")


def money(value: Decimal | None) -> str:
    """``$1,234.57``; under $10 four decimals (``$0.0090``); under $0.0001 four significant digits
    (``$0.00001212``); ``—`` for none. Rounded half up, for the eye only: totals are summed exactly first."""
    if value is None:
        return "—"
    if value == 0:
        return "$0.00"
    sign, value = ("-", -value) if value < 0 else ("", value)
    if value >= 10:
        return f"{sign}${value.quantize(_CENT, rounding=ROUND_HALF_UP):,}"
    if value >= _TEN_THOUSANDTH:
        return f"{sign}${value.quantize(_TEN_THOUSANDTH, rounding=ROUND_HALF_UP)}"
    exponent = value.adjusted() - 3
    return f"{sign}${value.quantize(Decimal(1).scaleb(exponent), rounding=ROUND_HALF_UP).normalize():f}"


def exact(value: Decimal | None) -> str:
    """The exact amount, trailing zeros dropped (``0.0001212``); ``unpriced`` for none."""
    if value is None:
        return "unpriced"
    return f"{value.normalize():f}"


def decimal_string(value: Decimal) -> str:
    """Money in JSON and CSV: the exact decimal as ClickHouse keeps it (``0.000121200000``), never a float,
    never an exponent."""
    return format(value, "f")


def count(value: int | None) -> str:
    """A whole number with thousands separators; ``—`` for none."""
    return "—" if value is None else f"{value:,}"


def compact(value: int) -> str:
    """``1.2M``, ``35.4k``, ``812``."""
    for limit, suffix in ((10**9, "B"), (10**6, "M"), (10**3, "k")):
        if abs(value) >= limit:
            return f"{Decimal(value) / limit:.1f}{suffix}"
    return str(value)


def iso(value: datetime | None) -> str | None:
    """ISO-8601 in UTC with a ``Z`` (``2026-11-02T09:30:00.250000Z``), or ``None``: JSON and CSV."""
    if value is None:
        return None
    utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return utc.isoformat().replace("+00:00", "Z")


def when(value: datetime | None) -> str:
    """``2026-11-01 09:30`` (UTC) for a table."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if value else ""


def timestamp(value: datetime | None) -> str:
    """``2026-11-01 09:30:05 UTC`` for a record a person reads."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "—"


def ago(value: datetime | None, now: datetime | None = None) -> str:
    """``3h ago``."""
    if value is None:
        return "—"
    seconds = int(((now or datetime.now(UTC)) - value).total_seconds())
    if seconds < 0:
        return "just now"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def latency(ms: float) -> str:
    """``812 ms``, ``2.35 s``."""
    return f"{ms / 1000:.2f} s" if ms >= 1000 else f"{ms:.0f} ms"


def plural(n: int, one: str, many: str | None = None) -> str:
    """``1 user``, ``2 users``, ``1,204 users``."""
    return f"{n:,} {one if n == 1 else (many or one + 's')}"
