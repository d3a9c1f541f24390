"""Many threads and asyncio tasks, many users, a flapping store: no cross-attribution, exact totals."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from spanledger import CostExporter, Ledger, Store, UserAttributionProcessor, attribute_to

CALL_COST = Decimal("0.0001212")
CALLS_EACH = 150


def _llm_call(tracer, tenant: str) -> None:  # type: ignore[no-untyped-def]
    with tracer.start_as_current_span("chat gpt-4o-mini") as span:
        span.set_attributes(
            {
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 1200,
                "gen_ai.usage.cache_read.input_tokens": 1024,
                "gen_ai.usage.output_tokens": 30,
            }
        )


def test_concurrent_users_while_the_store_flaps(store: Store, tmp_path: Path) -> None:
    exporter = CostExporter(store, spool_dir=tmp_path / "spool", flush_interval_ms=50)
    provider = TracerProvider()
    provider.add_span_processor(UserAttributionProcessor())
    provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=64, schedule_delay_millis=20))
    tracer = provider.get_tracer("concurrency")
    stop = threading.Event()

    def flap() -> None:  # starts detached: the first flushes are certain to fail
        while True:
            time.sleep(0.15)
            store.command(f"ATTACH TABLE {store.database}.llm_calls")
            if stop.wait(0.05):
                return
            store.command(f"DETACH TABLE {store.database}.llm_calls")

    def thread_user(i: int) -> None:
        with attribute_to(user_id=f"thread-{i}", tenant_id=f"tenant-{i % 2}"):
            for _ in range(CALLS_EACH):
                _llm_call(tracer, f"tenant-{i % 2}")

    async def task_user(i: int) -> None:
        with attribute_to(user_id=f"task-{i}", tenant_id=f"tenant-{i % 2}"):
            for _ in range(CALLS_EACH):
                _llm_call(tracer, f"tenant-{i % 2}")
                await asyncio.sleep(0)

    async def all_tasks() -> None:
        await asyncio.gather(*(task_user(i) for i in range(6)))

    store.command(f"DETACH TABLE {store.database}.llm_calls")
    flapper = threading.Thread(target=flap)
    flapper.start()
    try:
        with ThreadPoolExecutor(max_workers=6) as pool:
            futures = [pool.submit(contextvars.copy_context().run, thread_user, i) for i in range(6)]
            asyncio.run(all_tasks())
            for future in futures:
                future.result()
        provider.force_flush()
    finally:
        stop.set()
        flapper.join()
    deadline = time.monotonic() + 60
    while exporter.stats["stored"] < 12 * CALLS_EACH and time.monotonic() < deadline:
        exporter.force_flush(1_000)

    rows = Ledger(store).users(limit=100).rows
    assert sorted((r.user_id, r.tenant_id, r.usage.requests, r.usage.cost) for r in rows) == sorted(
        [(f"thread-{i}", f"tenant-{i % 2}", CALLS_EACH, CALL_COST * CALLS_EACH) for i in range(6)]
        + [(f"task-{i}", f"tenant-{i % 2}", CALLS_EACH, CALL_COST * CALLS_EACH) for i in range(6)]
    )
    assert exporter.stats["insert_failures"] > 0  # the store really was flapping
    raw = store.query(f"SELECT count(), uniqExact(span_id) FROM {store.database}.llm_calls").result_rows[0]
    assert raw == (12 * CALLS_EACH, 12 * CALLS_EACH)
    provider.shutdown()
