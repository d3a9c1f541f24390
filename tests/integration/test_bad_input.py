"""Bad input is contained: generated spans with broken values, mixed with valid ones, through the real exporter.

Expected outcomes are the documented ones (``_normalize.py``): a bad token count is stored as 0 with
``invalid_tokens:<key>`` (a numeric string or whole float is converted, flagged ``coerced_tokens:<key>``);
no model → ``no_model`` and unpriced; an unknown provider or model → unpriced (NULL cost, never free); a
user id is made a string without control characters (``user_id_cleaned``) of at most 256 characters
(``user_id_truncated``); a start time before 2020 or more than a day ahead → ``clock_skew``, stored at
export time; the same span id again → counted once; a span that is no LLM call → not stored.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from genai_prices import Usage, calc_price
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from opentelemetry import baggage, context
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanledger import CostExporter, Ledger, Store, UserAttributionProcessor, testing
from spanledger._capture.attribution import DEFAULT_TENANT_KEYS, DEFAULT_USER_KEYS
from spanledger.testing import llm_span

pytestmark = pytest.mark.integration

RESOURCE = Resource.create({"service.name": "bad-input"})
INPUT, OUTPUT = "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens"
PRICED = [("openai", "gpt-4o-mini"), ("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4-5")]
MIN_TS_NS = int(datetime(2020, 1, 1, tzinfo=UTC).timestamp()) * 10**9
FAR_FUTURE_NS = int(datetime(2200, 1, 1, tzinfo=UTC).timestamp()) * 10**9
DAY_NS = 86_400 * 10**9
FUTURE_NS = time.time_ns() + 2 * DAY_NS  # fixed at import: strategies must not read the clock
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
EXAMPLES = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass
class Case:
    """One span and what the ledger must make of it."""

    attributes: dict[str, Any]
    llm: bool = True
    user: str = ""
    tenant: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read: int = 0
    flags: set[str] = field(default_factory=set)
    priced: bool = True
    start_ns: int | None = None
    skewed: bool = False


def _attrs(provider: str, model: str, inp: int, out: int, read: int = 0) -> dict[str, Any]:
    attributes = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": provider, "gen_ai.request.model": model}
    attributes |= {INPUT: inp, OUTPUT: out}
    if read:
        attributes["gen_ai.usage.cache_read.input_tokens"] = read
    return attributes


def _clean(value: object, what: str) -> tuple[str, set[str]]:
    """The documented id outcome: a string, control characters removed, at most 256 characters."""
    if value is None or value == "":
        return "", set()  # absent: the call is unattributed
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    cleaned = CONTROL.sub("", text).strip()
    flags = {f"{what}_cleaned"} if cleaned != text else set()
    if len(cleaned) > 256:
        cleaned, flags = cleaned[:256], flags | {f"{what}_truncated"}
    return cleaned, flags


# --- strategies ---------------------------------------------------------------------------------------------

SAFE_ID = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_@.", min_size=1, max_size=24)


def _parses(text: str) -> bool:
    try:
        int(text.strip())
    except ValueError:
        return False
    return True


# (value, stored count, flag prefix or None)
BAD_TOKENS = st.one_of(
    st.integers(max_value=-1).map(lambda v: (v, 0, "invalid_tokens")),
    st.integers(min_value=10**10 + 1, max_value=2**70).map(lambda v: (v, 0, "invalid_tokens")),
    st.floats().filter(lambda v: not v.is_integer()).map(lambda v: (v, 0, "invalid_tokens")),
    st.integers(0, 10**9).map(lambda v: (float(v), v, "coerced_tokens")),
    st.booleans().map(lambda v: (v, 0, "invalid_tokens")),
    st.integers(0, 10**9).map(lambda v: (f" {v} ", v, "coerced_tokens")),
    st.text(max_size=12).filter(lambda s: s != "" and not _parses(s)).map(lambda v: (v, 0, "invalid_tokens")),
    st.binary(max_size=8).map(lambda v: (v, 0, "invalid_tokens")),
    st.lists(st.integers(0, 100), max_size=3).map(lambda v: (v, 0, "invalid_tokens")),
    st.just((None, 0, None)),  # absent
)
LONG_ID = st.text(min_size=1, max_size=16).map(lambda s: (s * (10_240 // len(s) + 1))[:10_240])
BAD_IDS = st.one_of(
    st.integers(),
    st.floats(),
    st.booleans(),
    st.lists(st.text(max_size=6), max_size=3),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=40),  # control characters included
    LONG_ID,
    st.binary(max_size=40),  # not necessarily UTF-8
)


@st.composite
def valid_cases(draw: st.DrawFn) -> Case:
    provider, model = draw(st.sampled_from(PRICED))
    inp, out = draw(st.integers(0, 200_000)), draw(st.integers(0, 20_000))
    read = draw(st.integers(0, inp))
    user, tenant = draw(SAFE_ID), draw(st.sampled_from(["acme", "globex", ""]))
    attributes = _attrs(provider, model, inp, out, read) | {"enduser.id": user, "tenant.id": tenant}
    return Case(attributes, user=user, tenant=tenant, input_tokens=inp, output_tokens=out, cache_read=read)


@st.composite
def bad_cases(draw: st.DrawFn) -> Case:
    case = draw(valid_cases())
    kind = draw(st.sampled_from(["tokens", "model", "user", "provider", "clock", "not_llm"]))
    event(f"bad {kind}")
    if kind == "tokens":
        key = draw(st.sampled_from([INPUT, OUTPUT]))
        value, stored, flag = draw(BAD_TOKENS)
        case.attributes.pop("gen_ai.usage.cache_read.input_tokens", None)
        case.cache_read = 0
        case.attributes[key] = value
        setattr(case, "input_tokens" if key == INPUT else "output_tokens", stored)
        case.flags = {f"{flag}:{key}"} if flag else set()
    elif kind == "model":
        case.attributes["gen_ai.request.model"] = draw(st.sampled_from([None, "", "   "]))
        case.flags, case.priced = {"no_model", "unpriced"}, False
    elif kind == "user":
        value = draw(BAD_IDS)
        case.attributes["enduser.id"] = value
        case.user, case.flags = _clean(value, "user_id")
    elif kind == "provider":
        raw = draw(st.text(alphabet="abcXYZ019-_ ", max_size=12))
        case.attributes["gen_ai.provider.name"] = f" ZZ-{raw}"
        case.attributes["gen_ai.request.model"] = f"zz-model-{draw(SAFE_ID)}"
        case.flags, case.priced = {"unpriced"}, False
    elif kind == "clock":
        # start_time 0 reads as "no start time" (stored at export time, but without the clock_skew flag)
        past, future = st.integers(1, MIN_TS_NS - 1), st.integers(FUTURE_NS, FAR_FUTURE_NS)
        case.start_ns, case.skewed, case.flags = draw(st.one_of(past, future)), True, {"clock_skew"}
    else:  # an HTTP span: no model, no tokens
        case.attributes = {"http.request.method": "POST", "url.full": "https://api.example/v1", "enduser.id": "x"}
        case.llm = False
    return case


def _user_case(value: object) -> Case:
    case = Case(_attrs("openai", "gpt-4o-mini", 100, 10) | {"enduser.id": value}, input_tokens=100, output_tokens=10)
    case.user, case.flags = _clean(value, "user_id")
    return case


@st.composite
def batches(draw: st.DrawFn) -> list[tuple[int, Case]]:
    """Valid and bad spans, some re-sent under an earlier span's id, in any order: ``(span id, case)``."""
    cases = draw(
        st.lists(st.one_of(valid_cases(), bad_cases(), bad_cases(), BAD_IDS.map(_user_case)), min_size=1, max_size=14)
    )
    batch = [(i + 1, case) for i, case in enumerate(cases)]
    for original in draw(st.lists(st.integers(1, len(cases)), max_size=4)):
        batch.append((original, draw(valid_cases())))
    return draw(st.permutations(batch))


def _span(span_id: int, case: Case, now_ns: int) -> ReadableSpan:
    start = case.start_ns if case.start_ns is not None else now_ns - span_id * 10**9
    return testing.span(
        attributes=case.attributes,
        name="chat" if case.llm else "POST",
        start_ns=start,
        duration=timedelta(milliseconds=100),
        trace_id=0xBAD0,
        span_id=span_id,
        resource=RESOURCE,
    )


def _price(provider: str, model: str, case: Case, at: datetime) -> Decimal:
    usage = Usage(input_tokens=case.input_tokens, output_tokens=case.output_tokens, cache_read_tokens=case.cache_read)
    return calc_price(usage, model_ref=model, provider_id=provider, genai_request_timestamp=at).total_price


@pytest.fixture(scope="module")
def fresh_store(chdb_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Opens a store on a fresh database per hypothesis example (module-scoped: hypothesis reruns the body)."""
    opened: list[Store] = []

    def open_one() -> tuple[Store, Path]:
        store = Store(f"chdb://{chdb_dir}?database=b_{uuid.uuid4().hex[:12]}")
        opened.append(store)
        return store, tmp_path_factory.mktemp("spool")

    yield open_one
    for store in opened:
        store.command(f"DROP DATABASE IF EXISTS {store.database} SYNC")


# --- properties ---------------------------------------------------------------------------------------------


@EXAMPLES
@given(batch=batches())
def test_bad_spans_are_contained_and_valid_ones_stored_exactly_once(fresh_store: Any, batch: list) -> None:
    store, spool = fresh_store()
    exporter = CostExporter(store, spool_dir=spool, flush_interval_ms=60_000, fsync=False)
    before = datetime.now(UTC)
    now_ns = time.time_ns()
    try:
        result = exporter.export([_span(span_id, case, now_ns) for span_id, case in batch])
        assert result is SpanExportResult.SUCCESS
        assert exporter.force_flush(30_000) is True
    finally:
        exporter.shutdown()
    after = datetime.now(UTC)

    expected: dict[int, Case] = {}
    for span_id, case in batch:  # the first LLM call under an id is the one counted
        if case.llm and span_id not in expected:
            expected[span_id] = case
    db = store.database
    rows = store.query(
        f"SELECT span_id, user_id, tenant_id, provider, model, input_tokens, output_tokens, flags, cost, timestamp "
        f"FROM {db}.llm_calls"
    ).named_results()
    stored = {row["span_id"]: row for row in rows}
    assert len(stored) == len(list(store.query(f"SELECT 1 FROM {db}.llm_calls").result_rows))  # each once
    assert sorted(stored) == sorted(expected)
    for span_id, case in expected.items():
        row = stored[span_id]
        assert (row["user_id"], row["input_tokens"], row["output_tokens"]) == (
            case.user,
            case.input_tokens,
            case.output_tokens,
        )
        assert row["tenant_id"] == case.attributes.get("tenant.id", "")
        assert case.flags <= set(row["flags"]), (case, row["flags"])
        if case.skewed:
            assert before.replace(tzinfo=None) <= row["timestamp"].replace(tzinfo=None) <= after.replace(tzinfo=None)
        if case.priced:
            at = row["timestamp"].replace(tzinfo=UTC)
            assert row["cost"] == _price(row["provider"], row["model"], case, at), case
        else:
            assert row["cost"] is None
    assert exporter.stats["received"] == len(batch)
    assert exporter.stats["stored"] == len(expected)
    assert exporter.stats["skipped:duplicate"] == sum(1 for _, c in batch if c.llm) - len(expected)

    # the ledger's totals are the sums of the stored rows
    sums = "count(), sum(input_tokens), sum(output_tokens), sum(ifNull(cost, 0)), countIf(cost IS NULL)"
    by_user = f"SELECT tenant_id, user_id, {sums} FROM {db}.llm_calls GROUP BY tenant_id, user_id"
    raw = {(r[0], r[1]): (r[2], r[3], r[4], Decimal(r[5]), r[6]) for r in store.query(by_user).result_rows}
    usage = {(r.tenant_id, r.user_id): r.usage for r in Ledger(store).users(limit=1000, include_unattributed=True).rows}
    ledger = {k: (u.requests, u.input_tokens, u.output_tokens, u.cost, u.unpriced_requests) for k, u in usage.items()}
    assert ledger == raw


# (attributes over a gpt-4o-mini call of 100 input / 10 output by "u1", stored (user, input, output), flags, priced)
DOCUMENTED = {
    "negative tokens": ({INPUT: -5}, ("u1", 0, 10), {f"invalid_tokens:{INPUT}"}, True),
    "huge tokens": ({OUTPUT: 10**12}, ("u1", 100, 0), {f"invalid_tokens:{OUTPUT}"}, True),
    "fractional tokens": ({INPUT: 12.5}, ("u1", 0, 10), {f"invalid_tokens:{INPUT}"}, True),
    "NaN tokens": ({OUTPUT: float("nan")}, ("u1", 100, 0), {f"invalid_tokens:{OUTPUT}"}, True),
    "whole float tokens": ({INPUT: 100.0}, ("u1", 100, 10), {f"coerced_tokens:{INPUT}"}, True),
    "bool tokens": ({OUTPUT: True}, ("u1", 100, 0), {f"invalid_tokens:{OUTPUT}"}, True),
    "numeric string tokens": ({INPUT: " 100 "}, ("u1", 100, 10), {f"coerced_tokens:{INPUT}"}, True),
    "word tokens": ({INPUT: "many"}, ("u1", 0, 10), {f"invalid_tokens:{INPUT}"}, True),
    "bytes tokens": ({INPUT: b"\xff"}, ("u1", 0, 10), {f"invalid_tokens:{INPUT}"}, True),
    "empty model": ({"gen_ai.request.model": ""}, ("u1", 100, 10), {"no_model", "unpriced"}, False),
    "unknown provider": (
        {"gen_ai.provider.name": " Acme-LLM ", "gen_ai.request.model": "acme-1"},
        ("u1", 100, 10),
        {"unpriced"},
        False,
    ),
    "int user": ({"enduser.id": 42}, ("42", 100, 10), set(), True),
    "control characters": ({"enduser.id": "a\x00b\tc\x7f\n"}, ("abc", 100, 10), {"user_id_cleaned"}, True),
    "10 kB user": ({"enduser.id": "u" * 10_240}, ("u" * 256, 100, 10), {"user_id_truncated"}, True),
    "non-UTF-8 bytes user": ({"enduser.id": b"\xffab"}, ("\ufffdab", 100, 10), set(), True),
}


@pytest.mark.parametrize("attributes, outcome, flags, priced", DOCUMENTED.values(), ids=DOCUMENTED.keys())
def test_each_bad_value_gets_its_documented_outcome_and_the_batch_survives(
    store: Store,
    tmp_path: Path,
    attributes: dict[str, Any],
    outcome: tuple[str, int, int],
    flags: set[str],
    priced: bool,
) -> None:
    base = _attrs("openai", "gpt-4o-mini", 100, 10) | {"enduser.id": "u1"}
    bad = Case(base | attributes)
    skewed = Case(_attrs("openai", "gpt-4o-mini", 100, 10), start_ns=MIN_TS_NS - DAY_NS)
    http = Case({"http.request.method": "GET"}, llm=False)
    now = time.time_ns()
    spans = [_span(1, Case(dict(base)), now), _span(2, bad, now), _span(3, skewed, now), _span(4, http, now)]
    spans.append(_span(1, Case(dict(base)), now))  # the first span again
    exporter = CostExporter(store, spool_dir=tmp_path / "spool")
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    assert exporter.force_flush(30_000) is True
    exporter.shutdown()
    rows = store.query(
        f"SELECT span_id, user_id, input_tokens, output_tokens, flags, cost, provider FROM {store.database}.llm_calls"
    ).result_rows
    by_id = {row[0]: row for row in rows}
    assert len(rows) == 3 and sorted(by_id) == [1, 2, 3]
    assert by_id[1][1:4] == ("u1", 100, 10) and by_id[1][5] == Decimal("0.000021")
    assert by_id[2][1:4] == outcome
    assert flags <= set(by_id[2][4])
    assert (by_id[2][5] is not None) is priced
    if not priced and "unpriced" in flags and attributes.get("gen_ai.provider.name"):
        assert by_id[2][6] == "acme-llm"
    assert "clock_skew" in by_id[3][4]
    assert exporter.stats["skipped:duplicate"] == 1 and exporter.stats["skipped:not_llm"] == 1


KEYS = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-", min_size=1, max_size=20)
VALUES = st.one_of(st.text(max_size=200), st.text(alphabet="ab%C3=;,", max_size=5000))
ENTRIES = st.lists(st.tuples(st.one_of(KEYS, st.sampled_from(["userId", "tenantId", "plan"])), VALUES), max_size=260)


@EXAMPLES
@given(entries=ENTRIES, all_tags=st.booleans())
def test_baggage_beyond_the_w3c_limits_never_breaks_attribution(entries: list[tuple[str, str]], all_tags: bool) -> None:
    header = ",".join(f"{key}={value}" for key, value in entries)
    ctx = W3CBaggagePropagator().extract({"baggage": header})
    kept = baggage.get_all(ctx)
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(UserAttributionProcessor(tag_keys=("*",) if all_tags else None))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    token = context.attach(ctx)
    try:
        with provider.get_tracer("test").start_as_current_span(
            "chat", attributes=_attrs("openai", "gpt-4o-mini", 1, 1)
        ):
            pass
    finally:
        context.detach(token)
        provider.shutdown()
    (span,) = memory.get_finished_spans()
    attributes = span.attributes or {}
    if len(header.encode()) > 8192:
        assert kept == {}  # the propagator drops the whole header
    assert attributes.get("enduser.id") == next((kept[k] for k in DEFAULT_USER_KEYS if kept.get(k)), None)
    assert attributes.get("tenant.id") == next((kept[k] for k in DEFAULT_TENANT_KEYS if kept.get(k)), None)


def test_over_limit_baggage_reaches_the_ledger_as_documented(store: Store, tmp_path: Path) -> None:
    def span_under(header: str, n: int) -> ReadableSpan:
        memory = InMemorySpanExporter()
        provider = TracerProvider(resource=RESOURCE)
        provider.add_span_processor(UserAttributionProcessor())
        provider.add_span_processor(SimpleSpanProcessor(memory))
        token = context.attach(W3CBaggagePropagator().extract({"baggage": header}))
        try:
            attributes = _attrs("openai", "gpt-4o-mini", 1200, 30, 1024)
            with provider.get_tracer("test").start_as_current_span(f"chat {n}", attributes=attributes):
                pass
        finally:
            context.detach(token)
            provider.shutdown()
        return memory.get_finished_spans()[0]

    filler = ",".join(f"k{i}=v" for i in range(200))
    headers = {
        "whole-header-too-long": "userId=u-total," + ",".join(f"k{i}={'x' * 90}" for i in range(100)),
        "entry-too-long": f"userId={'y' * 4100}",
        "after-180-entries": f"{filler},userId=u-late",
        "long-but-legal-id": f"userId={'z' * 4000}",
        "encoded-non-ascii": "userId=%C3%BC-%E7%94%A8%E6%88%B7",
    }
    spans = [span_under(header, n) for n, header in enumerate(headers.values())]
    exporter = CostExporter(store, spool_dir=tmp_path / "spool")
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    assert exporter.force_flush(30_000) is True
    exporter.shutdown()
    rows = store.query(f"SELECT user_id, flags FROM {store.database}.llm_calls ORDER BY span_id").result_rows
    by_user = {user: set(flags) for user, flags in rows}
    assert len(rows) == len(headers)
    assert by_user.keys() == {"", "z" * 256, "ü-用户"}
    assert "user_id_truncated" in by_user["z" * 256]
    users = {r.user_id: r.usage.requests for r in Ledger(store).users(include_unattributed=True).rows}
    assert users == {"": 3, "z" * 256: 1, "ü-用户": 1}


def test_an_id_that_cannot_be_utf8_encoded_does_not_sink_its_batch(store: Store, tmp_path: Path) -> None:
    spans = [llm_span(0, user="fine"), llm_span(1, user="bad\udcff"), llm_span(2, tenant="t\ud800")]
    exporter = CostExporter(store, spool_dir=tmp_path / "spool")
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    assert exporter.force_flush(30_000) is True
    exporter.shutdown()
    assert store.query(f"SELECT count() FROM {store.database}.llm_calls").result_rows == [(3,)]
    users = {r.user_id for r in Ledger(store).users().rows}
    assert users == {"fine", "bad\ufffd", "alice"}
