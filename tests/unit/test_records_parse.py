"""Records back into rows (``spanledger._present.parse``): every row kind survives the JSON round trip the
command line makes when it reads through ``spanledger serve`` — the same rows, hence the same output."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from spanledger._cli.remote import MOST_CALLS
from spanledger._model.call import StoredCall
from spanledger._model.rows import (
    Bucket,
    DailyRow,
    ModelRow,
    Overview,
    Page,
    TenantRow,
    TopUser,
    Totals,
    UserDetail,
    UserRow,
)
from spanledger._model.usage import METRICS, Usage
from spanledger._present import parse, records
from spanledger._query.sql import MAX_LIMIT
from spanledger.testing import llm_call

T0 = datetime(2026, 11, 30, 23, 59, 59, 999_999, tzinfo=UTC)


def _usage(**changes: Any) -> Usage:
    values: dict[str, Any] = {
        "requests": 3,
        "errors": 1,
        "input_tokens": 1200,
        "output_tokens": 30,
        "cache_read_tokens": 1024,
        "cache_write_tokens": 0,
        "reasoning_tokens": 7,
        "cost": Decimal("0.000121200000"),
        "unpriced_requests": 1,
        "unpriced_tokens": 99,
        "incomplete_requests": 0,
        "latency_us": 2_468_013,
        "traces": 2,
        "first_seen": datetime(2026, 11, 1, 0, 0, 0, 1, tzinfo=UTC),
        "last_seen": T0,
    }
    return Usage(**{**values, **changes})


def _over_the_wire(record: Any) -> Any:
    """What the API sends and the command line reads back."""
    return json.loads(json.dumps(record))


def _stored_call() -> StoredCall:
    call = llm_call(3, user="zoë", tenant="acme", tags={"plan": "pro", "=cmd": "@x"})
    fields = {f.name: getattr(call, f.name) for f in dataclasses.fields(call)}
    fields.update(cost=Decimal("0.001234567891"), input_cost=None, trace_id=2**128 - 1, span_id=1)
    return StoredCall(**fields, inserted_at=datetime(2026, 12, 1, 8, 0, 0, 123_000, tzinfo=UTC))


ROWS: list[tuple[type, Any]] = [
    (UserRow, UserRow("zoë", ("acme",), _usage(), 2, "gpt-4o-mini")),
    (UserRow, UserRow("", ("", "acme"), _usage(traces=None, first_seen=None, last_seen=None), 0, "")),
    (TenantRow, TenantRow("acme", _usage(cost=Decimal("12345678901234567890.123456789012")), 17)),
    (ModelRow, ModelRow("openai", "gpt-4o-mini", _usage(requests=0, latency_us=0))),
    (DailyRow, DailyRow(date(2026, 11, 30), Decimal("0E-12"), 0, 0)),
    (DailyRow, DailyRow(date(2026, 12, 1), Decimal("1.500000000000"), 4, 2, key="=HYPERLINK()")),
    (TopUser, TopUser("u", "t", Decimal("0.000000000001"), 1, 0)),
    (Totals, Totals(_usage(traces=None), 10, 3)),
    (StoredCall, _stored_call()),
    (Bucket, Bucket(Decimal("0.000210000000"), 3, 1, 2)),
]


def _same_rows(a: Any, b: Any) -> None:
    """Equal rows; a usage's ``latency_us`` travels as ``avg_latency_ms``, so that is what must agree."""
    if isinstance(a, Usage):
        assert dataclasses.replace(a, latency_us=0) == dataclasses.replace(b, latency_us=0)
        assert round(a.avg_latency_ms, 3) == round(b.avg_latency_ms, 3)
    elif dataclasses.is_dataclass(a):
        assert type(a) is type(b)
        for f in dataclasses.fields(a):
            _same_rows(getattr(a, f.name), getattr(b, f.name))
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _same_rows(x, y)
    else:
        assert (a, type(a)) == (b, type(b))


def test_every_flat_row_kind_has_a_parser_and_a_test() -> None:
    assert {cls for cls, _ in ROWS} == set(parse.SHAPES)


def test_every_row_comes_back_from_its_record() -> None:
    for cls, row in ROWS:
        shape = parse.SHAPES[cls]
        record = shape.record(row)
        back = parse.row(cls, _over_the_wire(record))
        _same_rows(row, back)
        assert shape.record(back) == record  # and so the JSON, CSV and tables made from it


def test_a_page_an_overview_and_a_user_detail_come_back() -> None:
    users = [r for c, r in ROWS if c is UserRow]
    unnamed = Bucket(Decimal("0.5"), 7, 1)
    page = Page(rows=users, total=41, page=3, limit=2, unnamed=unnamed)
    record = records.page_record(page, records.USER, unnamed="unattributed", sort_by="cost")
    back = parse.page(_over_the_wire(record), UserRow)
    _same_rows(page, back)
    assert records.page_record(back, records.USER, unnamed="unattributed", sort_by="cost") == record

    ov = Overview(
        totals=Totals(_usage(traces=None), 2, 1),
        unattributed_cost=Decimal("0.100000000000"),
        unattributed_requests=5,
        no_tenant_cost=Decimal("0.020000000000"),
        no_tenant_requests=2,
        top_users=[r for c, r in ROWS if c is TopUser],
        top_tenants=[r for c, r in ROWS if c is TenantRow],
        daily=[r for c, r in ROWS if c is DailyRow],
        previous=Totals(_usage(traces=None, requests=1), 1, 1),
    )
    back_ov = parse.overview(_over_the_wire(records.overview_record(ov)))
    _same_rows(ov, back_ov)
    assert records.overview_record(back_ov) == records.overview_record(ov)

    models = [r for c, r in ROWS if c is ModelRow]
    days = [r for c, r in ROWS if c is DailyRow]
    for summary, calls in ((users[0], [_stored_call()]), (None, [])):
        detail = UserDetail(user_id="zoë", summary=summary, models=models, daily=days, calls=calls)
        record = records.user_detail_record("zoë", summary, models, days, calls)
        back_detail = parse.user_detail(_over_the_wire(record))
        _same_rows(detail, back_detail)
        assert records.user_detail_record("zoë", back_detail.summary, models, days, back_detail.calls) == record


@given(
    requests=st.integers(0, 10**9),
    latency_us=st.integers(0, 10**15),
    cost=st.decimals(min_value=0, max_value=Decimal(10) ** 20, places=12, allow_nan=False),
    traces=st.none() | st.integers(0, 10**12),
    seen=st.none() | st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2199, 12, 31)),
)
def test_usage_metrics_come_back_exactly(
    requests: int, latency_us: int, cost: Decimal, traces: int | None, seen: datetime | None
) -> None:
    when = seen.replace(tzinfo=UTC) if seen else None
    usage = _usage(requests=requests, latency_us=latency_us, cost=cost, traces=traces, first_seen=when)
    row = TenantRow("t", usage, 1)
    record = records.TENANT.record(row)
    back = parse.row(TenantRow, _over_the_wire(record))
    _same_rows(row, back)
    assert records.TENANT.record(back) == record


def test_every_metric_records_leave_out_can_be_recovered() -> None:
    assert {m.name for m in METRICS if not m.shown} == set(parse.RECOVERED)


def test_the_remote_readers_bound_on_recent_calls_is_the_apis() -> None:
    assert MOST_CALLS == MAX_LIMIT
