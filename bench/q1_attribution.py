"""Q1: cost of ``UserAttributionProcessor.on_start`` per span with 0, 3 and 20 baggage entries.

Baseline: ``opentelemetry-processor-baggage``'s ``BaggageSpanProcessor(ALLOW_ALL_BAGGAGE_KEYS)`` with the same
baggage, measured in the same process, alternating with ours. Both are called the way the SDK calls them
(``on_start(span, parent_context=None)`` with the baggage in the current context) on a real, recording
SDK span (an HTTP span, the common case; three more rows use an LLM span, for which ours also runs its
duplicate-instrumentation check, once with no current span and once inside a recording request span,
as an LLM call made while serving a request is). For the 20-entry case ours is configured with ``tag_keys=("*",)`` so both copy all 20 entries;
a second row shows the default configuration (user, tenant and allowed tags only).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from opentelemetry import baggage, context, trace
from opentelemetry.processor.baggage import ALLOW_ALL_BAGGAGE_KEYS, BaggageSpanProcessor
from opentelemetry.sdk.trace import TracerProvider

from _common import emit, parse_args, row, side_by_side
from spanledger import UserAttributionProcessor


def baggage_entries(n: int) -> dict[str, str]:
    """``n`` baggage entries: user, tenant, then allowed tags, then other keys."""
    keys = ["userId", "tenantId", "plan", "feature", "env", "team", "project", "region"]
    keys += [f"extra_{i}" for i in range(max(0, n - len(keys)))]
    values = {"userId": "user_004217", "tenantId": "org_0042", "plan": "pro", "feature": "summarize"}
    return {k: values.get(k, f"value-{k}") for k in keys[:n]}


def per_call_ns(processor: object, span: object, calls: int) -> float:
    on_start = processor.on_start  # type: ignore[attr-defined]
    t0 = time.perf_counter_ns()
    for _ in range(calls):
        on_start(span, None)
    return (time.perf_counter_ns() - t0) / calls


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    calls = 10_000 if args.quick else 50_000
    repeats = 3 if args.quick else 15
    tracer = TracerProvider().get_tracer("bench")  # no processors: the span is only a target
    rows = []
    cases = [
        (0, "*", False, "0 baggage entries"),
        (3, "*", False, "3 baggage entries (user, tenant, plan)"),
        (20, "*", False, "20 baggage entries, all copied (tag_keys='*')"),
        (20, None, False, "20 baggage entries, default keys (ours copies 6 of 20)"),
        (0, "*", True, "0 baggage entries, LLM span (duplicate-call check runs)"),
        (3, "*", True, "3 baggage entries, LLM span (duplicate-call check runs)"),
        (0, "*", "in request", "0 baggage entries, LLM span inside a request span"),
    ]
    request = tracer.start_span("GET /api/summaries", attributes={"http.request.method": "GET", "http.route": "/x"})
    for n, tag_keys, llm, label in cases:
        ctx = context.get_current()
        if llm == "in request":
            ctx = trace.set_span_in_context(request, ctx)
        for key, value in baggage_entries(n).items():
            ctx = baggage.set_baggage(key, value, context=ctx)
        token = context.attach(ctx)
        try:
            if llm:
                span = tracer.start_span("chat gpt-4o-mini", attributes={"gen_ai.request.model": "gpt-4o-mini"})
            else:
                span = tracer.start_span("GET /api/summaries", attributes={"http.request.method": "GET"})
            ours = UserAttributionProcessor(tag_keys=("*",) if tag_keys else None)
            base = BaggageSpanProcessor(ALLOW_ALL_BAGGAGE_KEYS)
            per_call_ns(ours, span, calls // 10)  # warm up both
            per_call_ns(base, span, calls // 10)
            mine, theirs, ratio = side_by_side(
                repeats,
                lambda _i, o=ours, s=span: per_call_ns(o, s, calls) / 1000,
                lambda _i, b=base, s=span: per_call_ns(b, s, calls) / 1000,
            )
            span.end()
        finally:
            context.detach(token)
        med_ratio = sorted(ratio)[len(ratio) // 2]
        med_ours = sorted(mine)[len(mine) // 2]
        rows.append(
            row(
                label,
                "µs/span",
                mine,
                theirs,
                ratio,
                ratio_meaning="our time / baseline time (lower is better)",
                target="≤ 1.0× and ≤ 2 µs",
                met=med_ratio <= 1.0 and med_ours <= 2.0,
                calls_per_repeat=calls,
            )
        )
    emit(
        args,
        {
            "question": 1,
            "title": "UserAttributionProcessor.on_start cost per span",
            "baseline": "opentelemetry-processor-baggage BaggageSpanProcessor(ALLOW_ALL_BAGGAGE_KEYS), same baggage",
            "target": "≤ 1.0× the baseline; ≤ 2 µs per span",
            "method": (
                f"{calls:,} on_start calls on one recording SDK span per repeat, {repeats} repeats alternating "
                "ours/baseline; includes the Python call (both sides equally)"
            ),
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
