"""Pseudonyms, redaction, retention periods and the baggage filter, without a store."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from opentelemetry import baggage, context, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanledger import ConfigError, IdsStayHome, Pseudonymizer, Redactor, UserAttributionProcessor, attribute_to
from spanledger._capture.forward import Forwarder
from spanledger._capture.normalize import Normalizer
from spanledger._privacy import pseudonym, redact, retention
from spanledger._privacy.propagation import destination
from spanledger.testing import llm_span

KEY = "0123456789abcdef-test-key"


def test_a_pseudonym_is_the_prefixed_hmac_and_hashing_it_again_changes_nothing() -> None:
    p = Pseudonymizer(KEY)
    expected = "sl_" + hmac.new(KEY.encode(), b"alice", hashlib.sha256).hexdigest()[:32]
    assert p("alice") == expected
    assert len(expected) == pseudonym.PSEUDONYM_LENGTH == 35
    assert p(expected) == expected  # idempotent: a span hashed in one process, read in another
    assert p("") == ""  # unattributed stays unattributed
    assert Pseudonymizer(KEY + "x")("alice") != expected
    assert p.tenant("acme") == "acme" and Pseudonymizer(KEY, tenants=True).tenant("acme") == p("acme")
    assert p.audit_hash("alice") == p.audit_hash(expected) != expected  # the audit names neither id nor pseudonym
    assert KEY not in repr(p)


def test_a_short_key_is_refused_in_code_and_a_missing_key_when_required(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="at least 16"):
        Pseudonymizer("short")
    assert pseudonym.resolve(None) is None
    with pytest.raises(ConfigError, match="SPANLEDGER_ID_KEY"):
        pseudonym.resolve(True)
    monkeypatch.setenv("SPANLEDGER_ID_KEY", KEY)
    found = pseudonym.resolve(None)
    assert found is not None and found("alice") == Pseudonymizer(KEY)("alice")
    monkeypatch.setenv("SPANLEDGER_PSEUDONYMIZE", "off")
    assert pseudonym.resolve(None) is None and pseudonym.lookup_id("alice") == "alice"
    assert pseudonym.from_env(required=True) is not None  # forget's audit still has its key


def test_the_processor_and_baggage_carry_pseudonyms(monkeypatch: pytest.MonkeyPatch) -> None:
    memory = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(UserAttributionProcessor(pseudonymize=Pseudonymizer(KEY, tenants=True)))
    tp.add_span_processor(SimpleSpanProcessor(memory))
    tracer = tp.get_tracer("t")
    with attribute_to(user_id="alice", tenant_id="acme", plan="pro"):
        tracer.start_span("x", attributes={"gen_ai.request.model": "m", "gen_ai.request.user": "bob"}).end()
    monkeypatch.setenv("SPANLEDGER_ID_KEY", KEY)
    with attribute_to(user_id="carol"):
        sent = baggage.get_baggage("userId")
    (span,) = memory.get_finished_spans()
    p = Pseudonymizer(KEY)
    assert span.attributes is not None
    assert span.attributes["enduser.id"] == p("alice") and span.attributes["tenant.id"] == p("acme")
    assert span.attributes["gen_ai.request.user"] == p("bob")  # set by an instrumentation as the span started
    assert span.attributes["spanledger.tag.plan"] == "pro"
    assert sent == p("carol")  # what leaves the process in the baggage header


def test_the_normalizer_hashes_ids_any_instrumentation_wrote_and_the_forwarder_too() -> None:
    p = Pseudonymizer(KEY)
    made = llm_span(user=None, extra={"langfuse.user.id": "dora", "gen_ai.input.messages": "mail dora@example.com"})
    call = Normalizer(capture_content=True, pseudonymize=p, redact=Redactor()).normalize(made, made.start_time or 0)
    assert not isinstance(call, str)
    assert call.user_id == p("dora") and call.prompt == "mail [email]"

    memory = InMemorySpanExporter()
    Forwarder(memory, pseudonymize=p, redact=Redactor()).export([made], [call])
    (out,) = memory.get_finished_spans()
    assert out.attributes is not None
    assert out.attributes["langfuse.user.id"] == p("dora") and out.attributes["gen_ai.input.messages"] == "mail [email]"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to bob.smith+ops@mail.example.co.uk today", "write to [email] today"),
        ("+1 (555) 123-4567, 555-123-4567, 555.123.4567, +44 20 7946 0958", "[phone], [phone], [phone], [phone]"),
        ("key sk-proj-abcdefghijklmnop1234 and sk-ant-api03-ABCDEFGHIJKLMNOPQRST", "key [api_key] and [api_key]"),
        (
            "AKIAIOSFODNN7EXAMPLE ghp_" + "a" * 36 + " Bearer abcdefghijklmnop0123456789",
            "[api_key] [api_key] [api_key]",
        ),
        ("card 4111 1111 1111 1111 or 5500-0000-0000-0004", "card [card] or [card]"),
        ("not a card 4111 1111 1111 1112, a date 2026-11-02, order 12345678", None),
    ],
)
def test_each_built_in_pattern_is_redacted_and_look_alikes_are_left(text: str, expected: str | None) -> None:
    assert redact.redact_builtin(text) == (text if expected is None else expected)


def test_a_user_callable_runs_first_and_a_failing_one_drops_the_content() -> None:
    r = Redactor(lambda t: t.replace("Project Falcon", "[project]"))
    assert r("Project Falcon, ask ann@example.com") == "[project], ask [email]"
    assert Redactor(lambda t: t, builtin=False)("ann@example.com") == "ann@example.com"

    def broken(text: str) -> str:
        raise RuntimeError("boom")

    made = llm_span(extra={"gen_ai.input.messages": "secret"})
    call = Normalizer(capture_content=True, redact=Redactor(broken)).normalize(made, made.start_time or 0)
    assert not isinstance(call, str)
    assert call.prompt == "" and "redaction_failed" in call.flags


@pytest.mark.parametrize("bad", ["0", "-3", "ten", ""])
def test_a_retention_of_zero_negative_or_nonsense_days_is_an_error(bad: str) -> None:
    with pytest.raises(ConfigError, match="SPANLEDGER_RETENTION_DAYS"):
        retention.parse_days(bad, "SPANLEDGER_RETENTION_DAYS")
    assert retention.parse_days("forever", "x") is None and retention.parse_days(" 30 ", "x") == 30


def test_retention_periods_must_nest() -> None:
    with pytest.raises(ConfigError, match="content retention"):
        retention.Retention(raw_days=30, content_days=31).check()
    with pytest.raises(ConfigError, match="rollup retention"):
        retention.Retention(raw_days=30, rollup_days=29).check()
    ok = retention.Retention(raw_days=30, content_days=7, rollup_days=400).check()
    assert ok.describe() == {"raw calls": "30 days", "captured content": "7 days", "rollups": "400 days"}


def test_the_filter_keeps_spanledger_keys_from_third_parties_only() -> None:
    filt = IdsStayHome(W3CBaggagePropagator(), third_parties=["api.openai.com", "127.0.0.1:9999"])
    with attribute_to(user_id="erin", tenant_id="acme", plan="pro"):
        ctx = baggage.set_baggage("session.id", "s1")
        token = context.attach(ctx)
        try:
            to_provider: dict[str, str] = {"host": "api.openai.com"}
            filt.inject(to_provider)
            to_stub_port: dict[str, str] = {"host": "127.0.0.1:9999"}
            filt.inject(to_stub_port)
            to_own: dict[str, str] = {"host": "billing.internal:8080"}
            filt.inject(to_own)
            unknown: dict[str, str] = {}
            filt.inject(unknown)
        finally:
            context.detach(token)
    assert to_provider["baggage"] == to_stub_port["baggage"] == unknown["baggage"] == "session.id=s1"
    assert to_own["baggage"] == "userId=erin,tenantId=acme,plan=pro,session.id=s1"
    strict = IdsStayHome(W3CBaggagePropagator(), own_hosts=["*.internal"])
    assert strict.is_own(("billing.internal", 80)) and not strict.is_own(("example.com", 443))


def test_the_destination_is_read_from_the_span_being_propagated() -> None:
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("POST", attributes={"server.address": "api.anthropic.com", "server.port": 443}):
        assert destination({}, context.get_current()) == ("api.anthropic.com", 443)
    with tracer.start_as_current_span("GET", attributes={"url.full": "http://10.0.0.7:8000/x"}):
        assert destination({}, context.get_current()) == ("10.0.0.7", 8000)
    assert destination({}, trace.set_span_in_context(trace.INVALID_SPAN)) is None
