"""Q5 + Q6: query latency of ``Ledger.users`` / ``Ledger.user`` against a GROUP BY over the raw table,
and how it grows with data (100k → 1M → 10M calls, 100k users, 30 days). One script answers both
questions so the 10M-call store is built once.

Data: bulk-loaded with ``Store.insert_calls`` (column-oriented, 250,000 rows per insert, through the
materialized views as the exporter's inserts go) from the shared seeded generator — Zipf-like users, a
few heavy tenants, seven models with prompt caching, 1.5 % errors, 1 % unattributed — built in stages
(100k, +900k, +9M) whose blocks each cover the whole 30 days, so every stage is a valid data set on its
own. Rows are equal to what the exporter writes; their model, tokens and exact cost come from a pool of
8,192 calls priced by the real ``Pricer``. After each stage every table gets ``OPTIMIZE TABLE … FINAL``
(the merged steady state a long-running store reaches), timed and reported.

Queries, over the last 30 days with edges that are not on the hour (like a dashboard's "last 30 days"):
``users(limit=50)`` sorted by cost; the same for the heaviest tenant; the same with the tag
``plan=pro``; ``user(id)`` for the heaviest user. Baseline: the same answer (the same totals, distinct
models, top model, total row count; for ``user``: summary, per-model, daily and last 50 calls) from a
plain GROUP BY over ``llm_calls``. Every answer is compared field by field with the baseline's.

Dashboard: on each store the real ``spanledger serve`` app (``create_app``, no auth) answers ``/``,
``/users`` (by cost and by requests, and for the heaviest tenant) and ``/users/{id}`` in-process; the
time is the whole request (every query, rendering, the response) with the default 28-day window ending
now, whose edges fall inside hours like every real request's (issue 5: under a second at 10M calls).
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import itertools

import numpy as np

from _common import Timer, emit, parse_args, row, stats
from _datagen import DATA_END, Population, Templates, call_blocks
from spanledger import Ledger, Store
from spanledger._store.schema import ROLLUP_TABLES

WINDOW_END = DATA_END
WINDOW_START = DATA_END - timedelta(days=30)


def extra_args(parser: Any) -> None:
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where the benchmark store goes (default: a new temp dir)"
    )
    parser.add_argument("--sizes", default=None, help="comma-separated cumulative sizes (default 100k,1M,10M)")
    parser.add_argument("--build-budget", type=float, default=None, help="seconds allowed for loading data")
    parser.add_argument("--no-optimize", action="store_true")
    parser.add_argument(
        "--no-pages", dest="pages", action="store_false", help="skip timing the dashboard pages on each store"
    )


_INNER = """
    count() AS m_requests, sum(is_error) AS m_errors, sum(input_tokens) AS m_in, sum(output_tokens) AS m_out,
    sum(cache_read_tokens) AS m_cr, sum(cache_write_tokens) AS m_cw, sum(reasoning_tokens) AS m_rs,
    sum(ifNull(cost, toDecimal64(0, 12))) AS m_cost, countIf(cost IS NULL) AS m_unpriced,
    sum(duration_us) AS m_latency, uniqState(trace_id) AS m_traces,
    min(timestamp) AS m_first, max(timestamp) AS m_last"""


def baseline_users(store: Store, tenant: str | None, tags: dict[str, str] | None) -> list[dict[str, Any]]:
    db = store.database
    where, params = _where(tenant, None, tags)
    sql = f"""
SELECT tenant_id, user_id, sum(m_requests) AS requests, sum(m_errors) AS errors, sum(m_in) AS input_tokens,
    sum(m_out) AS output_tokens, sum(m_cr) AS cache_read_tokens, sum(m_cw) AS cache_write_tokens,
    sum(m_cost) AS cost, sum(m_unpriced) AS unpriced_requests, sum(m_latency) AS latency_us,
    uniqMerge(m_traces) AS traces, min(m_first) AS first_seen, max(m_last) AS last_seen,
    countIf(m_requests > m_errors) AS models, argMax(model, (m_cost, m_requests, model)) AS top_model,
    count() OVER () AS total_rows
FROM (SELECT tenant_id, user_id, model, {_INNER} FROM {db}.llm_calls WHERE {where} AND user_id != ''
      GROUP BY tenant_id, user_id, model)
GROUP BY tenant_id, user_id
ORDER BY cost DESC, tenant_id ASC, user_id ASC
LIMIT 50"""
    result = store.query(sql, params)
    return [dict(zip(result.column_names, r, strict=True)) for r in result.result_rows]


def _where(tenant: str | None, user: str | None, tags: dict[str, str] | None) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {
        "ws": WINDOW_START.strftime("%Y-%m-%d %H:%M:%S.%f"),
        "we": WINDOW_END.strftime("%Y-%m-%d %H:%M:%S.%f"),
    }
    where = "timestamp >= {ws:DateTime64(6, 'UTC')} AND timestamp < {we:DateTime64(6, 'UTC')}"
    if tenant is not None:
        params["tenant"] = tenant
        where += " AND tenant_id = {tenant:String}"
    if user is not None:
        params["user"] = user
        where += " AND user_id = {user:String}"
    for i, (k, v) in enumerate((tags or {}).items()):
        params[f"k{i}"], params[f"v{i}"] = k, v
        where += f" AND tags[{{k{i}:String}}] = {{v{i}:String}}"
    return where, params


def baseline_user(store: Store, user: str) -> dict[str, Any]:
    db = store.database
    where, params = _where(None, user, None)
    q = store.query
    summary = q(
        f"SELECT count() AS requests, sum(ifNull(cost, toDecimal64(0, 12))) AS cost, sum(input_tokens) AS input_tokens "
        f"FROM {db}.llm_calls WHERE {where}",
        params,
    ).result_rows[0]
    models = q(
        f"SELECT provider, model, count() AS requests, sum(ifNull(cost, toDecimal64(0, 12))) AS cost "
        f"FROM {db}.llm_calls WHERE {where} GROUP BY provider, model ORDER BY cost DESC, requests DESC, model ASC",
        params,
    ).result_rows
    daily = q(
        f"SELECT toDate(timestamp) AS day, sum(ifNull(cost, toDecimal64(0, 12))) AS cost, count() AS requests "
        f"FROM {db}.llm_calls WHERE {where} GROUP BY day ORDER BY day",
        params,
    ).result_rows
    calls = q(
        f"SELECT * FROM {db}.llm_calls WHERE {where} ORDER BY timestamp DESC, span_id DESC LIMIT 50", params
    ).result_rows
    return {"summary": summary, "models": models, "daily": daily, "calls": [c[2] for c in calls]}


def compare_users(ours: Any, base: list[dict[str, Any]]) -> list[str]:
    problems = []
    if len(ours.rows) != len(base):
        problems.append(f"row count {len(ours.rows)} != {len(base)}")
    if base and ours.total != int(base[0]["total_rows"]):
        problems.append(f"total {ours.total} != {base[0]['total_rows']}")
    for a, b in zip(ours.rows, base, strict=False):
        u = a.usage
        mine = (a.tenant_id, a.user_id, u.requests, u.errors, u.input_tokens, u.output_tokens, u.cache_read_tokens)
        theirs = (
            b["tenant_id"],
            b["user_id"],
            b["requests"],
            b["errors"],
            b["input_tokens"],
            b["output_tokens"],
            b["cache_read_tokens"],
        )
        if mine != theirs or u.cost != Decimal(b["cost"]) or u.unpriced_requests != b["unpriced_requests"]:
            problems.append(f"row {a.user_id}: {mine} {u.cost} != {theirs} {b['cost']}")
        if (a.distinct_models, a.top_model) != (b["models"], b["top_model"]):
            problems.append(
                f"models {a.user_id}: {(a.distinct_models, a.top_model)} != {(b['models'], b['top_model'])}"
            )
        if u.traces != b["traces"]:
            problems.append(f"traces {a.user_id}: {u.traces} != {b['traces']} (uniq)")
    return problems[:10]


def compare_user(ours: Any, base: dict[str, Any]) -> list[str]:
    problems = []
    s = ours.summary
    if s is None or (s.usage.requests, s.usage.cost, s.usage.input_tokens) != tuple(base["summary"]):
        problems.append(f"summary {s and (s.usage.requests, s.usage.cost)} != {base['summary']}")
    mine_models = [(m.provider, m.model, m.usage.requests, m.usage.cost) for m in ours.models]
    if mine_models != [tuple(r) for r in base["models"]]:
        problems.append("per-model breakdown differs")
    mine_daily = [(d.day, d.cost, d.requests) for d in ours.daily]
    if mine_daily != [tuple(r) for r in base["daily"]]:
        problems.append("daily series differs")
    if [int(c["span_id"], 16) for c in ours.calls] != base["calls"]:
        problems.append("last 50 calls differ")
    return problems


def time_ms(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def app_client(store: Store) -> Any:
    """The real ``spanledger serve`` app on the benchmark store, called in-process (no socket)."""
    from starlette.testclient import TestClient

    from spanledger._server import ServerSettings, create_app

    return TestClient(create_app(ServerSettings(store=store.dsn, no_auth=True), store=store))


def time_pages(client: Any, label: str, top_user: str, tenant: str, repeats: int, *, is_10m: bool) -> list[Any]:
    """Wall-clock time of whole dashboard requests (every query, rendering, the response), default 28-day
    window; the window's edges are "now", so they fall inside hours, like every real request."""
    pages = {
        "/ (overview)": "/",
        "/users": "/users",
        "/users sorted by requests": "/users?sortBy=requests",
        f"/users?tenant={tenant}": f"/users?tenant={tenant}",
        f"/users/{top_user}": f"/users/{top_user}",
    }
    out = []
    for name, url in pages.items():
        first = client.get(url)
        if first.status_code != 200:
            raise SystemExit(f"{url}: HTTP {first.status_code}")
        times = [time_ms(lambda u=url: client.get(u)) for _ in range(repeats)]
        out.append(
            row(
                f"{label}: dashboard {name}",
                "ms",
                times,
                target="< 1 s (issue 5: loads in under a second on 10M stored calls)" if is_10m else "— (curve point)",
                met=(stats(times)["median"] < 1000) if is_10m else None,
            )
        )
    return out


def table_facts(store: Store) -> dict[str, Any]:
    db = store.database
    rows = store.query(
        "SELECT table, sum(rows), count(), sum(data_compressed_bytes) FROM system.parts "
        "WHERE database = {db:String} AND active GROUP BY table ORDER BY table",
        {"db": db},
    ).result_rows
    return {t: {"rows": int(r), "parts": int(p), "compressed_bytes": int(b)} for t, r, p, b in rows}


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], extra_args)
    if args.sizes:
        sizes = [int(float(s)) for s in args.sizes.split(",")]
    else:
        sizes = [20_000, 100_000] if args.quick else [100_000, 1_000_000, 10_000_000]
    budget = args.build_budget or (120 if args.quick else 1200)
    repeats = 3 if args.quick else 7
    block = 250_000
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="spanledger-bench-q5-"))
    store = Store(f"chdb://{workdir / 'chdb'}?database=q5")
    ledger = Ledger(store)
    client = app_client(store) if args.pages else None
    pop = Population(users=100_000, tenants=1_000)
    templates = Templates(np.random.default_rng(7))
    tenant = pop.heavy_tenant()
    _top_tenant, top_user = pop.top_user()
    loaded = 0
    build_seconds = 0.0
    notes: list[str] = []
    curve: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    for stage, size in enumerate(sizes):
        want = size - loaded
        stage_loaded = 0
        stage_start = time.perf_counter()
        with Timer() as t_build:
            for cols in call_blocks(pop, templates, want, block=min(block, want), seed=1000 + stage, sliced=False):
                store.insert_calls(cols)
                stage_loaded += len(cols[0])
                if build_seconds + (time.perf_counter() - stage_start) > budget:
                    break
        loaded += stage_loaded
        build_seconds += t_build.seconds
        rate = stage_loaded / t_build.seconds if t_build.seconds else 0.0
        notes.append(
            f"stage {stage + 1}: loaded {stage_loaded:,} calls in {t_build.seconds:.0f} s ({rate:,.0f} calls/s "
            f"through insert_calls + {len(ROLLUP_TABLES)} MVs); store now {loaded:,} calls"
        )
        optimize_s = None
        if not args.no_optimize:
            with Timer() as t_opt:
                for table in ("llm_calls", *ROLLUP_TABLES):
                    store.command(f"OPTIMIZE TABLE {store.database}.{table} FINAL")
            optimize_s = t_opt.seconds
        facts = table_facts(store)
        label = f"{loaded / 1e6:g}M calls" if loaded >= 1_000_000 else f"{loaded / 1e3:g}k calls"
        if loaded < size:
            label += f" (build budget of {budget:.0f} s reached before {size:,})"
        distinct_users = store.query(
            f"SELECT uniqExact(user_id) FROM {store.database}.llm_calls WHERE user_id != ''"
        ).result_rows[0][0]

        queries = {
            "users top-50 by cost": (
                lambda: ledger.users(limit=50, start=WINDOW_START, end=WINDOW_END),
                lambda: baseline_users(store, None, None),
                compare_users,
            ),
            f"users top-50, tenant={tenant}": (
                lambda: ledger.users(limit=50, start=WINDOW_START, end=WINDOW_END, tenant_id=tenant),
                lambda: baseline_users(store, tenant, None),
                compare_users,
            ),
            "users top-50, tag plan=pro": (
                lambda: ledger.users(limit=50, start=WINDOW_START, end=WINDOW_END, tags={"plan": "pro"}),
                lambda: baseline_users(store, None, {"plan": "pro"}),
                compare_users,
            ),
            f"user({top_user}) detail": (
                lambda: ledger.user(top_user, start=WINDOW_START, end=WINDOW_END),
                lambda: baseline_user(store, top_user),
                compare_user,
            ),
        }
        point: dict[str, Any] = {
            "calls": loaded,
            "distinct_users": int(distinct_users),
            "tables": facts,
            "optimize_seconds": optimize_s,
        }
        for name, (ours_fn, base_fn, compare) in queries.items():
            problems = compare(ours_fn(), base_fn())  # also the warm-up
            mine, theirs = [], []
            for i in range(repeats):
                if i % 2 == 0:
                    mine.append(time_ms(ours_fn))
                    theirs.append(time_ms(base_fn))
                else:
                    theirs.append(time_ms(base_fn))
                    mine.append(time_ms(ours_fn))
            speedup = [b / a for a, b in zip(mine, theirs, strict=True)]
            med_ours, med_speed = stats(mine)["median"], stats(speedup)["median"]
            is_10m = loaded >= 10_000_000
            big = loaded >= 1_000_000
            target = "≥ 10× faster" + ("; p50 ≤ 50 ms" if is_10m else "")
            met = (med_speed >= 10 and (med_ours <= 50 or not is_10m) and not problems) if big else None
            rows.append(
                row(
                    f"{label}: {name}",
                    "ms",
                    mine,
                    theirs,
                    speedup,
                    ratio_meaning="baseline time / our time (speed-up, higher is better)",
                    target=target if big else "— (curve point)",
                    met=met,
                    answers_equal=not problems,
                    differences=problems,
                )
            )
            point[name] = {"ours_ms": stats(mine), "baseline_ms": stats(theirs)}
        if client is not None:
            rows.extend(time_pages(client, label, top_user, tenant, repeats, is_10m=loaded >= 10_000_000))
        curve.append(point)
        if loaded < size:
            notes.append(f"stopped at {loaded:,} calls: the build budget ({budget:.0f} s) ran out")
            break

    growth_rows = []
    for name in ("users top-50 by cost", f"user({top_user}) detail"):
        pts = [(p["calls"], p[name]["ours_ms"]["median"], p[name]["baseline_ms"]["median"]) for p in curve if name in p]
        for (n1, o1, b1), (n2, o2, b2) in itertools.pairwise(pts):
            exp_ours = math.log(o2 / o1) / math.log(n2 / n1)
            exp_base = math.log(b2 / b1) / math.log(n2 / n1)
            growth_rows.append(
                row(
                    f"{name}: {n1:,} → {n2:,} calls",
                    "growth exponent k in t ∝ n^k",
                    [exp_ours],
                    [exp_base],
                    target="sub-linear (k < 1)",
                    met=exp_ours < 1,
                    ours_ms=[o1, o2],
                    baseline_ms=[b1, b2],
                )
            )
    common = {
        "method": (
            f"{repeats} timed runs per query after one warm-up (which is also the equality check), alternating "
            "ours/baseline, same process and store; times are wall-clock ms as seen by the Python caller"
        ),
        "data": {
            "users": pop.users,
            "tenants": pop.tenants,
            "heavy_tenant": tenant,
            "top_user": top_user,
            "window": [str(WINDOW_START), str(WINDOW_END)],
            "insert_block_rows": block,
            "build_seconds": build_seconds,
            "curve": curve,
        },
        "notes": notes,
    }
    emit(
        args,
        [
            {
                "question": 5,
                "title": "Query latency: Ledger.users / Ledger.user vs GROUP BY over the raw table",
                "baseline": "the same answer by GROUP BY over llm_calls",
                "target": "≥ 10× faster; p50 ≤ 50 ms at 10M",
                "rows": rows,
                **common,
            },
            {
                "question": 6,
                "title": "How query latency grows with data (ours; baseline in the second column)",
                "baseline": "— (the raw GROUP BY shown for comparison)",
                "target": "sub-linear; print the curve",
                "rows": growth_rows,
                **common,
            },
        ],
    )


if __name__ == "__main__":
    main()
