"""Q4: records priced per second by ``spanledger.Pricer`` against one ``genai_prices.calc_price`` per record.

Records are ``LLMCall`` objects from the shared generator (seven models with their real shares, prompt
caching, 2 % unpriced custom model) in time order, 100 calls per second of request time (a busy
service: the stream crosses about 33 minutes for 200k records, so the per-minute price cache is
re-resolved as it would be in production). A fresh ``Pricer`` per repeat, so cold misses are included.
A second row prices the same records with timestamps scattered over 30 days (a backfill: most lookups
miss the cache). Every repeat checks that both sides give the same Decimal cost.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import genai_prices
import numpy as np
from genai_prices import Usage as GUsage

from _common import Timer, emit, parse_args, row, side_by_side
from _datagen import DATA_END, MODELS, SEED, Population, draw_usage
from spanledger import LLMCall, Pricer

QUANTUM = Decimal("1e-12")


def make_records(n: int, *, backfill: bool, seed: int = SEED) -> list[LLMCall]:
    rng = np.random.default_rng(seed)
    pop = Population(users=1000, tenants=50, seed=seed)
    models = rng.choice(len(MODELS), size=n, p=pop.model_p)
    start = DATA_END - timedelta(days=30 if backfill else 0)
    # backfill: random times over 30 days; stream: 100 calls per second
    offsets = rng.integers(0, 30 * 86_400 * 10**6, size=n).tolist() if backfill else [i * 10_000 for i in range(n)]
    out = []
    for u, off in zip(draw_usage(rng, models), offsets, strict=True):
        m = MODELS[u.model]
        out.append(
            LLMCall(
                timestamp=start + timedelta(microseconds=off),
                trace_id=1,
                span_id=1,
                parent_span_id=0,
                duration_us=1,
                provider=m.provider,
                model=m.response_model,
                request_model=m.request_model,
                operation="chat",
                input_tokens=u.input_tokens,
                output_tokens=u.output_tokens,
                cache_read_tokens=u.cache_read,
                cache_write_tokens=u.cache_write,
                reasoning_tokens=0,
                user_id="u",
                user_source="attribution",
                tenant_id="t",
                tags={},
                is_error=False,
                error_type="",
                response_id="",
                service_name="api",
                source="otel-genai",
            )
        )
    return out


def price_ours(records: list[LLMCall]) -> float:
    pricer = Pricer()
    price = pricer.price
    with Timer() as t:
        for call in records:
            price(call)
    return len(records) / t.seconds


def price_baseline(records: list[LLMCall]) -> tuple[float, list[Decimal | None]]:
    costs: list[Decimal | None] = []
    calc = genai_prices.calc_price
    with Timer() as t:
        for c in records:
            try:
                result = calc(
                    GUsage(
                        input_tokens=c.input_tokens,
                        output_tokens=c.output_tokens,
                        cache_read_tokens=c.cache_read_tokens,
                        cache_write_tokens=c.cache_write_tokens,
                    ),
                    model_ref=c.model,
                    provider_id=c.provider,
                    genai_request_timestamp=c.timestamp,
                )
                costs.append(result.total_price)
            except LookupError:
                costs.append(None)
    return len(records) / t.seconds, costs


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    n_ours = 20_000 if args.quick else 200_000
    n_base = 1_000 if args.quick else 10_000
    repeats = 3 if args.quick else 5
    rows, notes = [], []
    for backfill, label in (
        (False, "stream (time-ordered, 100 calls/s)"),
        (True, "backfill (random times over 30 days)"),
    ):
        mismatches = 0
        checked = 0

        n_mine = n_base // 5 if backfill else n_ours

        def ours(_i: int, backfill: bool = backfill, n_mine: int = n_mine) -> float:
            return price_ours(make_records(n_mine, backfill=backfill))

        def baseline(_i: int, backfill: bool = backfill) -> float:
            nonlocal mismatches, checked
            records = make_records(n_base, backfill=backfill)
            rate, costs = price_baseline(records)
            check = Pricer()
            for call, expected in list(zip(records, costs, strict=True))[:2000]:
                check.price(call)
                want = None if expected is None else expected.quantize(QUANTUM)
                checked += 1
                if call.cost != want:
                    mismatches += 1
            return rate

        mine, theirs, ratio = side_by_side(repeats, ours, baseline)
        med = sorted(ratio)[len(ratio) // 2]
        rows.append(
            row(
                label,
                "records/s",
                mine,
                theirs,
                ratio,
                ratio_meaning="our rate / baseline rate (higher is better)",
                target="≥ 50×" if not backfill else "— (informational)",
                met=(med >= 50 and mismatches == 0) if not backfill else None,
                records_ours=n_mine,
                records_baseline=n_base,
                cost_mismatches=mismatches,
                costs_checked=checked,
            )
        )
        notes.append(f"{label}: {checked:,} costs compared with calc_price (quantised to 1e-12), {mismatches} differ")
    emit(
        args,
        {
            "question": 4,
            "title": "Pricing throughput",
            "baseline": "one genai_prices.calc_price call per record",
            "target": "≥ 50×",
            "method": (
                f"ours prices {n_ours:,} records (backfill: {n_base:,}) with a fresh Pricer, the baseline {n_base:,} records "
                f"with calc_price; {repeats} repeats alternating; rates are records per second on one thread"
            ),
            "rows": rows,
            "notes": notes,
        },
    )


if __name__ == "__main__":
    main()
