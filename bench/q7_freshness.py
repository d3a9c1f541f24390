"""Q7: freshness — time from an LLM span ending to its user being visible in ``Ledger.users``.

A real pipeline in this process: ``TracerProvider`` + ``UserAttributionProcessor`` +
``BatchSpanProcessor(CostExporter(chdb))`` and a ``Ledger`` on the same store. Each probe ends one LLM
span for a new user inside ``attribute_to`` and then polls ``Ledger.users(search=<that user>)`` until the
user shows up; the figure is the time from ``span.end()`` to the return of the first query that saw it
(so it includes up to one query's latency, also reported). Probes come one at a time with a random
pause in between, with no other traffic: the batch timer, not a full batch, sends each span — the slow
case for a quiet service. Two settings: the SDK defaults (``OTEL_BSP_SCHEDULE_DELAY`` = 5000 ms) and the
recommended ``schedule_delay_millis=500`` with the exporter's defaults, and (when the exporter has a
``flush_interval_ms``) the same with ``flush_interval_ms=200``. The exporter's signature is recorded in
the result.
"""

from __future__ import annotations

import inspect
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind

from _common import emit, parse_args, row, stats
from spanledger import CostExporter, Ledger, Store, UserAttributionProcessor, attribute_to


def extra_args(parser: Any) -> None:
    parser.add_argument("--workdir", type=Path, default=Path.cwd())


def probe_latencies(
    dsn: str, samples: int, bsp_kwargs: dict[str, Any], exporter_kwargs: dict[str, Any], tag: str
) -> tuple[list[float], list[float]]:
    store = Store(dsn)
    ledger = Ledger(store)
    provider = TracerProvider()
    provider.add_span_processor(UserAttributionProcessor())
    provider.add_span_processor(BatchSpanProcessor(CostExporter(store=store, **exporter_kwargs), **bsp_kwargs))
    tracer = provider.get_tracer("bench")
    rng = random.Random(7)
    latencies, query_ms = [], []
    for k in range(samples):
        time.sleep(rng.uniform(0.05, 0.4))
        user = f"fresh_{tag}_{k:03d}"
        with attribute_to(user_id=user, tenant_id="org_fresh", plan="pro"):
            span = tracer.start_span(
                "chat gpt-4o-mini",
                kind=SpanKind.CLIENT,
                attributes={
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o-mini",
                },
            )
            span.set_attributes(
                {
                    "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
                    "gen_ai.usage.input_tokens": 1200,
                    "gen_ai.usage.output_tokens": 30,
                }
            )
            span.end()
        ended = time.perf_counter()
        deadline = ended + 60
        while True:
            q0 = time.perf_counter()
            page = ledger.users(search=user, limit=1)
            q1 = time.perf_counter()
            query_ms.append((q1 - q0) * 1000)
            if page.rows:
                latencies.append(q1 - ended)
                break
            if q1 > deadline:
                raise SystemExit(f"{user} not visible after 60 s")
            time.sleep(0.005)
    provider.shutdown()
    return latencies, query_ms


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], extra_args)
    location = args.workdir / "chdb"
    dsn = f"chdb://{location}?database=" + "{db}"
    Store(dsn.format(db="warmup"))
    exporter_params = inspect.signature(CostExporter.__init__).parameters
    settings: list[tuple[str, dict[str, Any], dict[str, Any], int, str]] = [
        (
            "SDK default BatchSpanProcessor (schedule_delay 5000 ms), exporter defaults",
            {},
            {},
            2 if args.quick else 8,
            "",
        ),
        (
            "recommended: schedule_delay_millis=500, exporter defaults",
            {"schedule_delay_millis": 500},
            {},
            3 if args.quick else 20,
            "≤ 2 s",
        ),
    ]
    if "flush_interval_ms" in exporter_params:
        settings.append(
            (
                "schedule_delay_millis=500 and CostExporter(flush_interval_ms=200)",
                {"schedule_delay_millis": 500},
                {"flush_interval_ms": 200},
                3 if args.quick else 20,
                "≤ 2 s",
            )
        )
    rows = []
    for i, (label, bsp_kwargs, exporter_kwargs, samples, target) in enumerate(settings):
        lat, q_ms = probe_latencies(dsn.format(db=f"fresh_{i}"), samples, bsp_kwargs, exporter_kwargs, f"s{i}")
        p50 = stats(lat)["median"]
        ordered = sorted(lat)
        p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
        rows.append(
            row(
                label,
                "s from span end to visible",
                lat,
                target=target or "— (print)",
                met=(p50 <= 2.0) if target else None,
                p90=p90,
                poll_query_ms=stats(q_ms),
                samples=samples,
            )
        )
    emit(
        args,
        {
            "question": 7,
            "title": "Freshness: span end → visible in Ledger.users",
            "baseline": "—",
            "target": "≤ 2 s with recommended settings",
            "method": "one probe span at a time, no other traffic; poll Ledger.users(search=user) every 5 ms",
            "notes": [f"CostExporter{inspect.signature(CostExporter.__init__)}"],
            "exporter_signature": str(inspect.signature(CostExporter.__init__)),
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
