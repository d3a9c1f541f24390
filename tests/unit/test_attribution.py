"""``attribute_to`` and ``UserAttributionProcessor``: who each span's work is for, across every context hop."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from opentelemetry import baggage, context, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Tracer

from spanledger import TAG_PREFIX, TENANT_ATTRIBUTE, USER_ATTRIBUTE, UserAttributionProcessor, attribute_to
from spanledger._capture import attribution as _attribution
from spanledger._capture.attribution import NESTED_ATTRIBUTE


@pytest.fixture
def tracer(provider: TracerProvider) -> Tracer:
    return provider.get_tracer("test")


def spans_by_name(exporter: InMemorySpanExporter) -> dict[str, Mapping[str, Any]]:
    spans: tuple[ReadableSpan, ...] = exporter.get_finished_spans()
    by_name = {span.name: dict(span.attributes or {}) for span in spans}
    assert len(by_name) == len(spans), "span names must be unique in these tests"
    return by_name


def ours(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes our processor writes."""
    return {k: v for k, v in attributes.items() if k in (USER_ATTRIBUTE, TENANT_ATTRIBUTE) or k.startswith(TAG_PREFIX)}


def test_context_manager_sets_user_tenant_and_tags(tracer: Tracer, memory_exporter: InMemorySpanExporter) -> None:
    with (
        attribute_to(user_id="u1", tenant_id="acme", plan="pro", feature="summarize"),
        tracer.start_as_current_span("inside"),
        tracer.start_as_current_span("child"),
    ):
        pass
    with tracer.start_as_current_span("after"):
        pass
    spans = spans_by_name(memory_exporter)
    expected = {
        USER_ATTRIBUTE: "u1",
        TENANT_ATTRIBUTE: "acme",
        TAG_PREFIX + "plan": "pro",
        TAG_PREFIX + "feature": "summarize",
    }
    assert ours(spans["inside"]) == expected
    assert ours(spans["child"]) == expected
    assert ours(spans["after"]) == {}
    assert baggage.get_all() == {}


def test_values_are_strings_and_none_is_left_out(tracer: Tracer, memory_exporter: InMemorySpanExporter) -> None:
    with attribute_to(user_id=42, tenant_id=None, plan=None, team="core"):
        assert dict(baggage.get_all()) == {"userId": "42", "team": "core"}
        with tracer.start_as_current_span("s"):
            pass
    assert ours(spans_by_name(memory_exporter)["s"]) == {USER_ATTRIBUTE: "42", TAG_PREFIX + "team": "core"}


def test_decorator_on_a_sync_function(tracer: Tracer, memory_exporter: InMemorySpanExporter) -> None:
    @attribute_to(user_id="u-sync", plan="free")
    def handle(name: str) -> str:
        with tracer.start_as_current_span(name):
            pass
        return name.upper()

    assert handle.__name__ == "handle"
    assert handle("first") == "FIRST"
    assert handle("second") == "SECOND"
    with tracer.start_as_current_span("outside"):
        pass
    spans = spans_by_name(memory_exporter)
    for name in ("first", "second"):
        assert ours(spans[name]) == {USER_ATTRIBUTE: "u-sync", TAG_PREFIX + "plan": "free"}
    assert ours(spans["outside"]) == {}


def test_decorator_on_an_async_function(tracer: Tracer, memory_exporter: InMemorySpanExporter) -> None:
    @attribute_to(user_id="u-async", tenant_id="globex")
    async def handle(name: str) -> str:
        await asyncio.sleep(0)
        with tracer.start_as_current_span(name):
            await asyncio.sleep(0)
        return name

    async def main() -> list[str]:
        return list(await asyncio.gather(handle("a"), handle("b"), handle("c")))

    assert inspect.iscoroutinefunction(handle)
    assert asyncio.run(main()) == ["a", "b", "c"]
    spans = spans_by_name(memory_exporter)
    for name in "abc":
        assert ours(spans[name]) == {USER_ATTRIBUTE: "u-async", TENANT_ATTRIBUTE: "globex"}


def test_context_is_restored_when_the_body_raises() -> None:
    @attribute_to(user_id="u-err")
    def fail() -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail()
    with pytest.raises(KeyError), attribute_to(user_id="u-err2"):
        raise KeyError("x")
    assert baggage.get_all() == {}


def test_nesting_overrides_key_by_key_and_restores(tracer: Tracer, memory_exporter: InMemorySpanExporter) -> None:
    with attribute_to(user_id="outer", tenant_id="acme", plan="free"):
        with tracer.start_as_current_span("before"):
            pass
        with attribute_to(user_id="inner", plan="pro"), tracer.start_as_current_span("nested"):
            pass
        with tracer.start_as_current_span("restored"):
            pass
    spans = spans_by_name(memory_exporter)
    outer = {USER_ATTRIBUTE: "outer", TENANT_ATTRIBUTE: "acme", TAG_PREFIX + "plan": "free"}
    assert ours(spans["before"]) == outer
    assert ours(spans["nested"]) == {USER_ATTRIBUTE: "inner", TENANT_ATTRIBUTE: "acme", TAG_PREFIX + "plan": "pro"}
    assert ours(spans["restored"]) == outer


def test_the_same_instance_can_be_entered_twice(tracer: Tracer, memory_exporter: InMemorySpanExporter) -> None:
    attribution = attribute_to(user_id="again")
    with attribution:
        with attribution:
            pass
        with tracer.start_as_current_span("still"):
            pass
    assert ours(spans_by_name(memory_exporter)["still"]) == {USER_ATTRIBUTE: "again"}
    assert baggage.get_all() == {}


def test_many_concurrent_asyncio_tasks_never_cross_talk(tracer: Tracer, memory_exporter: InMemorySpanExporter) -> None:
    async def request(i: int) -> None:
        with attribute_to(user_id=f"user-{i}", tenant_id=f"tenant-{i % 7}", plan=f"plan-{i % 3}"):
            for step in range(3):
                await asyncio.sleep(0)  # let every other task run in between
                with tracer.start_as_current_span(f"req-{i}-{step}"):
                    await asyncio.sleep(0)
                    with tracer.start_as_current_span(f"req-{i}-{step}-llm"):
                        await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.gather(*(request(i) for i in range(200)))

    asyncio.run(main())
    spans = spans_by_name(memory_exporter)
    assert len(spans) == 200 * 3 * 2
    for name, attributes in spans.items():
        i = int(name.split("-")[1])
        assert ours(attributes) == {
            USER_ATTRIBUTE: f"user-{i}",
            TENANT_ATTRIBUTE: f"tenant-{i % 7}",
            TAG_PREFIX + "plan": f"plan-{i % 3}",
        }, name


def test_tasks_created_inside_inherit_the_attribution(tracer: Tracer, memory_exporter: InMemorySpanExporter) -> None:
    async def work(name: str) -> None:
        await asyncio.sleep(0)
        with tracer.start_as_current_span(name):
            pass

    async def main() -> None:
        with attribute_to(user_id="parent"):
            task = asyncio.create_task(work("child-task"))
        await task  # the task copied the context when it was created

    asyncio.run(main())
    assert ours(spans_by_name(memory_exporter)["child-task"]) == {USER_ATTRIBUTE: "parent"}


def test_thread_with_a_copied_context(tracer: Tracer, memory_exporter: InMemorySpanExporter) -> None:
    def work(name: str) -> None:
        with tracer.start_as_current_span(name):
            pass

    with attribute_to(user_id="threaded", tenant_id="acme"):
        copied = threading.Thread(target=contextvars.copy_context().run, args=(work, "copied"))
        plain = threading.Thread(target=work, args=("plain",))
    copied.start()
    plain.start()
    copied.join()
    plain.join()
    spans = spans_by_name(memory_exporter)
    assert ours(spans["copied"]) == {USER_ATTRIBUTE: "threaded", TENANT_ATTRIBUTE: "acme"}
    assert ours(spans["plain"]) == {}  # a new thread starts with an empty context


def test_thread_pool_with_copied_contexts(tracer: Tracer, memory_exporter: InMemorySpanExporter) -> None:
    def work(i: int) -> None:
        with tracer.start_as_current_span(f"job-{i}"):
            pass

    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = []
        for i in range(40):
            with attribute_to(user_id=f"user-{i}"):
                futures.append(pool.submit(contextvars.copy_context().run, work, i))
        for future in futures:
            future.result()
    spans = spans_by_name(memory_exporter)
    assert {name: ours(a) for name, a in spans.items()} == {
        f"job-{i}": {USER_ATTRIBUTE: f"user-{i}"} for i in range(40)
    }


def test_manual_baggage_works_exactly_like_attribute_to(tracer: Tracer, memory_exporter: InMemorySpanExporter) -> None:
    ctx = baggage.set_baggage("userId", "u7")
    ctx = baggage.set_baggage("tenantId", "acme", context=ctx)
    ctx = baggage.set_baggage("plan", "pro", context=ctx)
    token = context.attach(ctx)
    try:
        with tracer.start_as_current_span("manual"):
            pass
    finally:
        context.detach(token)
    with attribute_to(user_id="u7", tenant_id="acme", plan="pro"), tracer.start_as_current_span("helper"):
        pass
    spans = spans_by_name(memory_exporter)
    assert (
        ours(spans["manual"])
        == ours(spans["helper"])
        == {
            USER_ATTRIBUTE: "u7",
            TENANT_ATTRIBUTE: "acme",
            TAG_PREFIX + "plan": "pro",
        }
    )


@pytest.mark.parametrize(
    ("entries", "user", "tenant"),
    [
        ({"user_id": "snake", "userId": "camel"}, "camel", None),  # first key of the list wins
        ({"enduser.id": "std", "user.id": "dotted"}, "dotted", None),
        ({"org": "o1", "organization.id": "o2"}, None, "o1"),
        ({"tenant_id": "t1", "orgId": "o2"}, None, "t1"),
        ({"userId": ""}, None, None),  # empty values are not users
    ],
)
def test_default_keys_first_match_wins(
    tracer: Tracer,
    memory_exporter: InMemorySpanExporter,
    entries: dict[str, str],
    user: str | None,
    tenant: str | None,
) -> None:
    ctx = context.get_current()
    for key, value in entries.items():
        ctx = baggage.set_baggage(key, value, context=ctx)
    with tracer.start_as_current_span("s", context=ctx):
        pass
    attributes = ours(spans_by_name(memory_exporter)["s"])
    assert attributes.get(USER_ATTRIBUTE) == user
    assert attributes.get(TENANT_ATTRIBUTE) == tenant
    assert not any(k.startswith(TAG_PREFIX) for k in attributes)  # identity keys are never tags


@pytest.fixture
def custom() -> Iterator[tuple[Tracer, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(UserAttributionProcessor(user_keys=("customer",), tenant_keys=("account",), tag_keys=("*",)))
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    yield tp.get_tracer("custom"), exporter
    tp.shutdown()


def test_configured_keys_and_every_tag(custom: tuple[Tracer, InMemorySpanExporter]) -> None:
    tracer, exporter = custom
    ctx = context.get_current()
    for key, value in {"customer": "c1", "account": "a1", "region": "eu", "anything": "x", "tenantId": "t"}.items():
        ctx = baggage.set_baggage(key, value, context=ctx)
    with tracer.start_as_current_span("s", context=ctx):
        pass
    assert ours(spans_by_name(exporter)["s"]) == {
        USER_ATTRIBUTE: "c1",
        TENANT_ATTRIBUTE: "a1",
        TAG_PREFIX + "region": "eu",
        TAG_PREFIX + "anything": "x",
        TAG_PREFIX + "tenantId": "t",  # not a tenant key in this configuration, so just a tag
    }


def test_default_tag_allow_list(tracer: Tracer, memory_exporter: InMemorySpanExporter) -> None:
    ctx = context.get_current()
    for key, value in {"plan": "pro", "env": "prod", "session": "s-1", "secret": "nope"}.items():
        ctx = baggage.set_baggage(key, value, context=ctx)
    with tracer.start_as_current_span("s", context=ctx):
        pass
    assert ours(spans_by_name(memory_exporter)["s"]) == {TAG_PREFIX + "plan": "pro", TAG_PREFIX + "env": "prod"}


def test_tags_given_to_attribute_to_are_always_allowed(tracer: Tracer, memory_exporter: InMemorySpanExporter) -> None:
    with attribute_to(user_id="u", experiment="B"), tracer.start_as_current_span("s"):
        pass
    assert ours(spans_by_name(memory_exporter)["s"]) == {USER_ATTRIBUTE: "u", TAG_PREFIX + "experiment": "B"}


def test_key_lists_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPANLEDGER_USER_KEYS", "member, customer")
    monkeypatch.setenv("SPANLEDGER_TENANT_KEYS", "workspace")
    monkeypatch.setenv("SPANLEDGER_TAG_KEYS", "tier")
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(UserAttributionProcessor())
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    ctx = context.get_current()
    for key, value in {"customer": "c9", "workspace": "w1", "tier": "gold", "plan": "pro"}.items():
        ctx = baggage.set_baggage(key, value, context=ctx)
    with tp.get_tracer("env").start_as_current_span("s", context=ctx):
        pass
    tp.shutdown()
    assert ours(spans_by_name(exporter)["s"]) == {
        USER_ATTRIBUTE: "c9",
        TENANT_ATTRIBUTE: "w1",
        TAG_PREFIX + "tier": "gold",
    }


def test_propagate_false_keeps_ids_out_of_baggage(tracer: Tracer, memory_exporter: InMemorySpanExporter) -> None:
    propagator = W3CBaggagePropagator()
    with attribute_to(user_id="private", tenant_id="acme", plan="pro", propagate=False):
        assert baggage.get_all() == {}
        local: dict[str, str] = {}
        propagator.inject(local)
        with tracer.start_as_current_span("local"):
            pass
    with attribute_to(user_id="public"):
        sent: dict[str, str] = {}
        propagator.inject(sent)
    assert local == {}
    assert sent == {"baggage": "userId=public"}
    assert ours(spans_by_name(memory_exporter)["local"]) == {
        USER_ATTRIBUTE: "private",
        TENANT_ATTRIBUTE: "acme",
        TAG_PREFIX + "plan": "pro",
    }


def test_local_attribution_overrides_baggage(tracer: Tracer, memory_exporter: InMemorySpanExporter) -> None:
    with (
        attribute_to(user_id="from-baggage", tenant_id="acme"),
        attribute_to(user_id="local", propagate=False),
        tracer.start_as_current_span("s"),
    ):
        pass
    assert ours(spans_by_name(memory_exporter)["s"]) == {USER_ATTRIBUTE: "local", TENANT_ATTRIBUTE: "acme"}


def test_the_instrumentations_own_user_is_kept(tracer: Tracer, memory_exporter: InMemorySpanExporter) -> None:
    with (
        attribute_to(user_id="from-baggage", tenant_id="acme"),
        tracer.start_as_current_span("instrumented", attributes={USER_ATTRIBUTE: "from-instrumentation"}),
    ):
        pass
    assert ours(spans_by_name(memory_exporter)["instrumented"]) == {
        USER_ATTRIBUTE: "from-instrumentation",
        TENANT_ATTRIBUTE: "acme",
    }


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("marker", ["gen_ai.request.model", "llm.model_name", "ai.model.id"])
def test_the_outer_of_two_nested_llm_spans_is_marked(
    tracer: Tracer, memory_exporter: InMemorySpanExporter, marker: str, fast: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A framework's LLM span around the provider SDK's: one call, so the outer span is marked to skip.
    ``fast=False``: the same through ``get_current_span``, as when the API's span key cannot be read."""

    if not fast:
        monkeypatch.setattr(_attribution, "_SPAN_KEY", None)
    llm = {"gen_ai.request.model": "gpt-4o"}
    with (
        tracer.start_as_current_span("outer llm", attributes={marker: "gpt-4o"}),
        tracer.start_as_current_span("inner llm", attributes=llm),
    ):
        pass
    with (
        tracer.start_as_current_span("http handler"),
        tracer.start_as_current_span("lone llm", attributes=llm),
        tracer.start_as_current_span("POST /v1/chat/completions"),
    ):
        pass
    spans = spans_by_name(memory_exporter)
    assert spans["outer llm"].get(NESTED_ATTRIBUTE) is True
    for name in ("inner llm", "http handler", "lone llm", "POST /v1/chat/completions"):
        assert NESTED_ATTRIBUTE not in spans[name], name


def test_an_open_llm_span_of_another_instrumentation_for_the_same_call_is_marked(
    provider: TracerProvider, memory_exporter: InMemorySpanExporter
) -> None:
    """Some instrumentations start their span without making it current (the Anthropic one does)."""
    framework, sdk = provider.get_tracer("framework"), provider.get_tracer("provider-sdk")
    call = {"gen_ai.system": "anthropic", "gen_ai.request.model": "claude-3-5-haiku-latest"}
    outer = framework.start_span("framework llm", attributes=call)  # not made current
    with sdk.start_as_current_span("sdk llm", attributes=call):
        pass
    outer.end()
    same_scope = sdk.start_span("first of two parallel calls", attributes=call)
    with sdk.start_as_current_span("second of two parallel calls", attributes=call):
        pass
    same_scope.end()
    other_model = framework.start_span("other model", attributes={**call, "gen_ai.request.model": "claude-sonnet-4-5"})
    with sdk.start_as_current_span("sdk call", attributes=call):
        pass
    other_model.end()
    spans = spans_by_name(memory_exporter)
    assert spans["framework llm"].get(NESTED_ATTRIBUTE) is True
    for name in ("sdk llm", "first of two parallel calls", "second of two parallel calls", "other model", "sdk call"):
        assert NESTED_ATTRIBUTE not in spans[name], name


def test_attribute_to_user_and_tenant_survive_custom_key_lists(memory_exporter: InMemorySpanExporter) -> None:
    tp = TracerProvider()
    tp.add_span_processor(UserAttributionProcessor(user_keys=("customer",), tenant_keys=("account",), tag_keys=("*",)))
    tp.add_span_processor(SimpleSpanProcessor(memory_exporter))
    tracer = tp.get_tracer("t")
    with attribute_to(user_id="u1", tenant_id="t1", plan="pro"), tracer.start_as_current_span("s"):
        pass
    ctx = baggage.set_baggage("customer", "upstream-customer")
    token = context.attach(ctx)
    try:
        with tracer.start_as_current_span("from-upstream"):
            pass
    finally:
        context.detach(token)
    first, second = memory_exporter.get_finished_spans()
    assert first.attributes == {"enduser.id": "u1", "tenant.id": "t1", "spanledger.tag.plan": "pro"}
    assert second.attributes == {"enduser.id": "upstream-customer"}
    tp.shutdown()


def test_fast_baggage_read_agrees_with_the_api() -> None:
    """on_start reads the Context's baggage entry directly; it must be what ``baggage.get_all`` sees."""

    assert _attribution._BAGGAGE_KEY is not None, "the API's baggage key moved: on_start falls back to get_all"
    ctx = baggage.set_baggage("userId", "u9", baggage.set_baggage("plan", "pro"))
    assert ctx.get(_attribution._BAGGAGE_KEY) == dict(baggage.get_all(ctx)) == {"userId": "u9", "plan": "pro"}


def test_fast_current_span_read_agrees_with_the_api(tracer: Tracer) -> None:
    """The duplicate-call check reads the Context's span entry directly; it must be the current span."""

    assert _attribution._SPAN_KEY is not None, "the API's span key moved: on_start falls back to get_current_span"
    with tracer.start_as_current_span("request") as span:
        ctx = context.get_current()
        assert ctx.get(_attribution._SPAN_KEY) is trace.get_current_span(ctx) is span


@pytest.mark.parametrize("fast", [True, False])
def test_manual_baggage_with_and_without_the_fast_read(
    fast: bool, tracer: Tracer, memory_exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:

    if not fast:
        monkeypatch.setattr(_attribution, "_BAGGAGE_KEY", None)
    ctx = baggage.set_baggage("userId", "u7", baggage.set_baggage("tenantId", "t7", baggage.set_baggage("plan", "x")))
    token = context.attach(ctx)
    try:
        with tracer.start_as_current_span("manual"):
            pass
    finally:
        context.detach(token)
    with tracer.start_as_current_span("none"):
        pass
    spans = spans_by_name(memory_exporter)
    assert ours(spans["manual"]) == {USER_ATTRIBUTE: "u7", TENANT_ATTRIBUTE: "t7", TAG_PREFIX + "plan": "x"}
    assert ours(spans["none"]) == {}


def test_non_ascii_baggage_crosses_a_process_boundary_intact() -> None:
    """What the README says: W3C baggage percent-encodes non-ASCII values on inject, decodes them on extract."""
    from opentelemetry.baggage.propagation import W3CBaggagePropagator

    carrier: dict[str, str] = {}
    with attribute_to(user_id="zoë", tenant_id="münchen-gmbh", plan="prö"):
        W3CBaggagePropagator().inject(carrier)
    assert carrier["baggage"].isascii() and "%C3%AB" in carrier["baggage"]
    received = baggage.get_all(W3CBaggagePropagator().extract(carrier))
    assert dict(received) == {"userId": "zoë", "tenantId": "münchen-gmbh", "plan": "prö"}
