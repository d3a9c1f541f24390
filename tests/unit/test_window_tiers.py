"""How a window is cut into tiers: raw edges, whole hours, whole days, and nothing lost or counted twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from spanledger._query.tiers import TierPlan as Window
from spanledger._query.tiers import plan as window

_T0 = datetime(2026, 10, 30, tzinfo=UTC)
# offsets in microseconds from _T0, so that edges land on, near and between hour and day boundaries
_offsets = st.one_of(
    st.integers(0, 5 * 86_400 * 10**6),
    st.integers(0, 5 * 24).map(lambda h: h * 3_600 * 10**6),
    st.integers(0, 5 * 24).map(lambda h: h * 3_600 * 10**6 + 1),
)


def _at(offset: int) -> datetime:
    return _T0 + timedelta(microseconds=offset)


def _pieces(w: Window) -> list[tuple[str, datetime, datetime]]:
    """The non-empty ranges each tier reads, as ``Query.union`` reads them."""
    hourly = [(w.hours, w.days), (w.days_end, w.hours_end)] if w.days < w.days_end else [(w.hours, w.hours_end)]
    out = [("raw", w.start, w.hours), ("raw", w.hours_end, w.end), ("day", w.days, w.days_end)]
    out += [("hour", a, b) for a, b in hourly]
    return sorted((p for p in out if p[1] < p[2] and not (p[0] == "day" and w.days >= w.days_end)), key=lambda p: p[1])


def _check_partition(w: Window) -> None:
    pieces = _pieces(w)
    cursor = w.start
    for tier, a, b in pieces:
        assert a == cursor, (tier, a, cursor, w)  # contiguous: no gap, no overlap
        if tier == "hour":
            assert (a.minute, a.second, a.microsecond) == (0, 0, 0) and (b.minute, b.second, b.microsecond) == (0, 0, 0)
        if tier == "day":
            assert a.time() == b.time() == datetime.min.time()
        cursor = b
    assert cursor == w.end or (not pieces and w.start == w.end)


@given(_offsets, _offsets)
def test_every_cut_covers_the_window_exactly_once(a: int, b: int) -> None:
    start, end = _at(min(a, b)), _at(max(a, b))
    for w in (window(start, end), window(start, end).by_day(), window(start, end, rollups=False)):
        _check_partition(w)


@given(_offsets, _offsets)
def test_by_day_has_no_hourly_tier(a: int, b: int) -> None:
    w = window(_at(min(a, b)), _at(max(a, b))).by_day()
    assert not any(tier == "hour" for tier, _a, _b in _pieces(w))
    whole_day = window(_at(min(a, b)), _at(max(a, b)))
    assert (w.days, w.days_end) == (whole_day.days, whole_day.days_end) or w.days == w.days_end == w.end


@given(_offsets, _offsets)
def test_each_tier_takes_all_it_can(a: int, b: int) -> None:
    # what a finer tier reads is less than one unit of the next coarser one: the raw edges less than an
    # hour, the hourly edges less than a day (when there is a whole day inside)
    pieces = _pieces(window(_at(min(a, b)), _at(max(a, b))))
    has_days = any(tier == "day" for tier, _lo, _hi in pieces)
    for tier, lo, hi in pieces:
        if tier == "raw":
            assert hi - lo < timedelta(hours=1)
        if tier == "hour" and has_days:
            assert hi - lo < timedelta(days=1)
