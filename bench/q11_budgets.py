"""Q11: what budgets cost — ``BudgetGuard.check`` per call with 10k budgeted users, on the cached path and when
it must read the store, side by side with the same loop without a guard; alert and spike evaluation at 100k
users and 10M calls, side by side with one ``GROUP BY`` of the raw table over the same window.

The store holds 10M calls of 100k users in 1,000 tenants over 30 days (``--calls``; ``_datagen``), 10,000
per-user monthly budgets (the heaviest users), a tenant default and a tag default; a few users are made to
spike in the last hour. Every figure is taken at the data's end (``DATA_END``), where the month is 20 days old.

* cached: each iteration is ``with attribute_to(user, tenant): guard.check(estimate).release()`` over 1,000
  users read once before; the baseline is the same loop with ``pass`` for the guard (attribution only);
* must read: a check of a user the guard has not read (its monthly spend is one query), one at a time;
* alerts: ``Alerts.candidates()`` parts — every budget's threshold (the budgets report: one query per kind of
  subject and period), an absolute rule (any user over $X today), a spike rule (users above $2 in the last
  hour, then their 14 daily totals) — beside a ``GROUP BY (tenant_id, user_id)`` of ``llm_calls`` for the
  month (thresholds), the day (absolute) and the last 15 days (spike).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np

from _common import Timer, emit, parse_args, row, side_by_side
from _datagen import DATA_END, Population, Templates, call_blocks
from spanledger import AlertRule, Alerts, BudgetExceeded, BudgetGuard, CostExporter, Store, attribute_to
from spanledger._budgets.model import make_budget
from spanledger._budgets.report import report
from spanledger._budgets.store import save_all
from spanledger._ingest.codec import to_columns
from spanledger.testing import llm_call

BUDGETED = 10_000
HOT = 1_000


def extra_args(parser: Any) -> None:
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--calls", type=int, default=None, help="calls in the store (default 10M; --quick 200k)")
    parser.add_argument("--reuse", action="store_true", help="use the store already in --workdir as it is")


def raw_group_by(store: Store, start: Any, end: Any) -> int:
    """The baseline: every (tenant, user)'s spend in a window, straight from ``llm_calls``."""
    sql = (
        f"SELECT tenant_id, user_id, sum(ifNull(cost, toDecimal64(0, 12))) AS c FROM {store.database}.llm_calls "
        "WHERE timestamp >= {a:DateTime64(6, 'UTC')} AND timestamp < {b:DateTime64(6, 'UTC')} GROUP BY tenant_id, user_id"
    )
    return len(store.query(sql, {"a": start, "b": end}).result_rows)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], extra_args)
    total = args.calls or (200_000 if args.quick else 10_000_000)
    repeats = 5 if args.quick else 9
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="spanledger-bench-q11-"))
    store = Store(f"chdb://{workdir / 'chdb'}?database=q11")
    pop = Population(users=100_000, tenants=1_000)
    held = store.query(f"SELECT count() FROM {store.database}.llm_calls").result_rows[0][0]
    with Timer() as t_build:
        if not (args.reuse and held):
            for cols in call_blocks(
                pop, Templates(np.random.default_rng(7)), total, block=min(250_000, total), seed=1100
            ):
                store.insert_calls(cols)
            spikers = []
            for n in range(5):  # five users stuck in a loop in the last hour
                call = llm_call(
                    n, user=pop.user_names[50_000 + n], tenant=pop.tenant_names[int(pop.user_tenant[50_000 + n])]
                )
                call.timestamp, call.cost, call.span_id = DATA_END - timedelta(minutes=10), Decimal(25), 10**15 + n
                spikers.append(call)
            store.insert_calls(to_columns(spikers))
            pairs = [(pop.tenant_names[int(pop.user_tenant[i])], pop.user_names[i]) for i in range(BUDGETED)]
            budgets = [make_budget(limit="2", period="monthly", tenant_id=t, user_id=u) for t, u in pairs]
            budgets.append(make_budget(limit="1", period="monthly", tenant_id=pop.heavy_tenant(), default=True))
            budgets.append(make_budget(limit="5", period="monthly", tag="plan=free", hard=False))
            save_all(store, budgets)
    total = store.query(f"SELECT count() FROM {store.database}.llm_calls").result_rows[0][0]
    pairs = [(pop.tenant_names[int(pop.user_tenant[i])], pop.user_names[i]) for i in range(BUDGETED)]
    exporter = CostExporter(store, spool_dir=workdir / "spool")
    guard = BudgetGuard(store, pipeline=exporter.pipeline, now=lambda: DATA_END, store_timeout_ms=60_000)
    estimate = Decimal("0.000001")
    hot = pairs[BUDGETED - HOT :]  # budgeted users well within their budget
    for tenant, user in hot:
        guard.check(estimate, tenant_id=tenant, user_id=user).release()
    loop = 20_000 if not args.quick else 5_000

    def cached(_: int) -> float:
        started = time.perf_counter()
        for i in range(loop):
            tenant, user = hot[i % HOT]
            with attribute_to(user_id=user, tenant_id=tenant):
                guard.check(estimate).release()
        return (time.perf_counter() - started) / loop * 1e6

    def without(_: int) -> float:
        started = time.perf_counter()
        for i in range(loop):
            tenant, user = hot[i % HOT]
            with attribute_to(user_id=user, tenant_id=tenant):
                pass
        return (time.perf_counter() - started) / loop * 1e6

    ours, base, ratio = side_by_side(repeats, cached, without)
    reads_before = guard.stats["store_reads"]
    cold_pairs = iter(pairs[: BUDGETED - HOT])
    refused = [0]

    def cold(_: int) -> float:
        times = []
        for _n in range(20):
            tenant, user = next(cold_pairs)
            started = time.perf_counter()
            try:  # a heavy user may be over its budget: a refusal is a whole check too, store read included
                guard.check(estimate, tenant_id=tenant, user_id=user).release()
            except BudgetExceeded:
                refused[0] += 1
            times.append(time.perf_counter() - started)
        return statistics.median(times) * 1000

    def cold_baseline(_: int) -> float:
        return without(0) / 1000  # µs → ms: the same call without a guard

    cold_ours, cold_base, cold_ratio = side_by_side(repeats, cold, cold_baseline)
    rows = [
        row("BudgetGuard.check, cached path (10k budgeted users)", "µs/call", ours, base, ratio,
            ratio_meaning="guarded loop / the same loop without a guard", target="documented", met=None,
            loop=loop, extra_us=statistics.median(ours) - statistics.median(base)),
        row("BudgetGuard.check, must read the store (a user not read yet)", "ms/call", cold_ours, cold_base,
            cold_ratio, ratio_meaning="check with a store read / the same call without a guard",
            target="≤ store_timeout_ms (250)", met=statistics.median(cold_ours) <= 250,
            store_reads=guard.stats["store_reads"] - reads_before, refused=refused[0]),
    ]  # fmt: skip
    guard.close()
    exporter.shutdown()

    alerts = Alerts(
        store, rules=["absolute:user:daily:20", "spike:user:hour:5:2"], webhook_url="", now=lambda: DATA_END
    )
    month = (DATA_END.replace(day=1, hour=0, minute=0, second=0, microsecond=0), DATA_END)
    day = (DATA_END.replace(hour=0, minute=0, second=0, microsecond=0), DATA_END)
    fortnight = (DATA_END - timedelta(days=15), DATA_END)
    counts: dict[str, int] = {}

    def thresholds(_: int) -> float:
        with Timer() as t:
            counts["report_rows"] = len(report(store, now=DATA_END))
        return t.seconds

    def absolute(_: int) -> float:
        with Timer() as t:
            counts["absolute"] = len(alerts._absolute(AlertRule.parse("absolute:user:daily:20"), DATA_END))
        return t.seconds

    def spike(_: int) -> float:
        with Timer() as t:
            counts["spikes"] = len(alerts._spikes(AlertRule.parse("spike:user:hour:5:2"), DATA_END))
        return t.seconds

    def baseline(window: tuple[Any, Any]) -> Any:
        def run(_: int) -> float:
            with Timer() as t:
                raw_group_by(store, *window)
            return t.seconds

        return run

    for label, ours_fn, window in (
        ("alert evaluation: every budget's thresholds (10k budgets, the budgets report)", thresholds, month),
        ("alert evaluation: an absolute rule (any user over $20 today)", absolute, day),
        ("alert evaluation: the spike rule (last hour vs 14-day median)", spike, fortnight),
    ):
        a, b, r = side_by_side(repeats, ours_fn, baseline(window))
        rows.append(
            row(
                label,
                "s",
                a,
                b,
                r,
                ratio_meaning="ours / GROUP BY (tenant, user) of llm_calls over the window",
                target="documented",
                met=None,
            )
        )
    emit(
        args,
        {
            "question": 11,
            "title": "Budgets: the guard's cost per call, alert and spike evaluation",
            "baseline": "the same loop without a guard; one GROUP BY (tenant_id, user_id) of llm_calls over the window",
            "target": "check on the cached path in microseconds; evaluation of every rule well within its interval (60 s)",
            "method": f"{total:,} calls, 100k users, 1,000 tenants, {BUDGETED:,} budgets; {repeats} repeats, alternated",
            "rows": rows,
            "notes": [
                f"store built in {t_build.seconds:.0f} s; report rows {counts.get('report_rows')}, absolute alerts "
                f"{counts.get('absolute')}, spikes {counts.get('spikes')} (five users were made to spike)",
            ],
        },
    )


if __name__ == "__main__":
    main()
