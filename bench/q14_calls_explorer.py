"""Q14: the calls explorer at 10M stored calls — the first page and a page 10,000 calls deep, filtered and not.

Ours: ``Ledger.calls`` (keyset: the newest calls before a cursor, read from a time slice one hour wide that
widens fourfold while it holds too few). Baseline, side by side in the same run on the same store: the plain
SQL a dashboard would write, ``ORDER BY timestamp DESC … LIMIT 50 OFFSET n`` over the same filters. Both
pages are checked to hold the same calls. Target: every page under a second.

    python bench/q14_calls_explorer.py                       # builds 10M calls in --workdir (about 15 min)
    python bench/q14_calls_explorer.py --store chdb:///path/chdb?database=q14   # an existing store
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np

from _common import Timer, emit, parse_args, row, side_by_side, stats
from _datagen import DATA_END, Population, Templates, call_blocks
from spanledger import Ledger, Store
from spanledger._query.calls import Cursor
from spanledger._store.schema import ROLLUP_TABLES

WINDOW = (DATA_END - timedelta(days=30), DATA_END + timedelta(seconds=1))
DEEP = 10_000
PAGE = 50


def extra_args(parser: Any) -> None:
    parser.add_argument("--workdir", type=Path, default=None, help="where a new store is built")
    parser.add_argument("--store", default=None, help="an existing store's DSN (skips the build)")
    parser.add_argument("--size", type=float, default=None, help="calls to build (default 10M; --quick 200k)")


def _baseline(store: Store, where: str, params: dict[str, Any], offset: int) -> list[tuple[int, int]]:
    sql = f"""
SELECT trace_id, span_id FROM {store.database}.llm_calls
WHERE timestamp >= {{lo:DateTime64(6, 'UTC')}} AND timestamp < {{hi:DateTime64(6, 'UTC')}}{where}
ORDER BY timestamp DESC, trace_id DESC, span_id DESC
LIMIT {PAGE} OFFSET {offset}"""
    return [(int(a), int(b)) for a, b in store.query(sql, {**params, "lo": WINDOW[0], "hi": WINDOW[1]}).result_rows]


def _deep_cursor(store: Store, where: str, params: dict[str, Any]) -> str | None:
    """The cursor after the first ``DEEP`` calls (what following ``next`` 200 times would hand over)."""
    sql = f"""
SELECT timestamp, trace_id, span_id FROM {store.database}.llm_calls
WHERE timestamp >= {{lo:DateTime64(6, 'UTC')}} AND timestamp < {{hi:DateTime64(6, 'UTC')}}{where}
ORDER BY timestamp DESC, trace_id DESC, span_id DESC
LIMIT 1 OFFSET {DEEP - 1}"""
    rows = store.query(sql, {**params, "lo": WINDOW[0], "hi": WINDOW[1]}).result_rows
    if not rows:
        return None
    at, trace, span = rows[0]
    from datetime import UTC

    return Cursor(at.replace(tzinfo=UTC) if at.tzinfo is None else at, int(trace), int(span)).encode()


_CLIENT: list[Any] = []


def _client(store: Store) -> Any:
    """The dashboard on the same store, without tokens (loopback), through Starlette's test client."""
    if not _CLIENT:
        from starlette.testclient import TestClient

        from spanledger._server import ServerSettings, Tokens, create_app

        settings = ServerSettings(store=store.dsn, tokens=Tokens(), no_auth=True, host="127.0.0.1")
        _CLIENT.append(TestClient(create_app(settings, store=store)))
    return _CLIENT[0]


def _page_query(args: dict[str, Any]) -> list[tuple[str, str]]:
    """The dashboard URL's parameters for the same window (whole UTC days) and filters."""
    out = [("window", "custom"), ("from", f"{WINDOW[0]:%Y-%m-%d}"), ("to", f"{WINDOW[1]:%Y-%m-%d}")]
    names = {"tenant_id": "tenant", "user_id": "user", "status": "status", "model": "model", "min_cost": "min_cost"}
    for key, value in args.items():
        if key == "tags":
            out += [("tag", f"{k}={v}") for k, v in value.items()]
        else:
            out.append((names[key], str(value)))
    return out


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], extra_args)
    size = int(args.size or (200_000 if args.quick else 10_000_000))
    repeats = 3 if args.quick else 7
    notes: list[str] = []
    if args.store:
        store = Store(args.store, existing=True)
    else:
        workdir = args.workdir or Path(tempfile.mkdtemp(prefix="spanledger-bench-q14-"))
        store = Store(f"chdb://{workdir / 'chdb'}?database=q14")
        pop = Population(users=100_000, tenants=1_000)
        with Timer() as t:
            for cols in call_blocks(pop, Templates(np.random.default_rng(7)), size, block=250_000, seed=1000):
                store.insert_calls(cols)
            for table in ("llm_calls", *ROLLUP_TABLES):
                store.command(f"OPTIMIZE TABLE {store.database}.{table} FINAL")
        notes.append(f"built {size:,} calls in {t.seconds:.0f} s")
    pop = Population(users=100_000, tenants=1_000)
    tenant = pop.heavy_tenant()
    _t, user = pop.top_user()
    stored = store.query(f"SELECT count() FROM {store.database}.llm_calls").result_rows[0][0]
    notes.append(f"store holds {stored:,} calls; window {WINDOW[0]:%Y-%m-%d %H:%M} → {WINDOW[1]:%Y-%m-%d %H:%M} UTC")
    ledger = Ledger(store)
    cases: list[tuple[str, dict[str, Any], str, dict[str, Any]]] = [
        ("unfiltered", {}, "", {}),
        (f"tenant={tenant}", {"tenant_id": tenant}, " AND tenant_id = {t:String}", {"t": tenant}),
        (f"user={user}", {"user_id": user}, " AND user_id = {u:String}", {"u": user}),
        ("failed calls", {"status": "error"}, " AND is_error = 1", {}),
        ("tag plan=pro", {"tags": {"plan": "pro"}}, " AND tags['plan'] = 'pro'", {}),
        (
            "model=claude-sonnet-4 and cost ≥ $0.05",
            {"model": "claude-sonnet-4-20250514", "min_cost": "0.05"},
            " AND model = 'claude-sonnet-4-20250514' AND cost >= 0.05",
            {},
        ),
    ]
    rows = []
    for label, ours_args, where, params in cases:
        for deep in (False, True):
            cursor = _deep_cursor(store, where, params) if deep else None
            if deep and cursor is None:
                notes.append(f"{label}: fewer than {DEEP:,} calls match; no deep page")
                continue
            offset = DEEP if deep else 0
            mine = ledger.calls(start=WINDOW[0], end=WINDOW[1], cursor=cursor, limit=PAGE, **ours_args)
            theirs = _baseline(store, where, params, offset)
            same = [(c.trace_id, c.span_id) for c in mine.calls] == theirs

            def ours(_i: int, cursor: str | None = cursor, a: dict[str, Any] = ours_args) -> float:
                start = time.perf_counter()
                ledger.calls(start=WINDOW[0], end=WINDOW[1], cursor=cursor, limit=PAGE, **a)
                return (time.perf_counter() - start) * 1000

            def base(_i: int, w: str = where, p: dict[str, Any] = params, o: int = offset) -> float:
                start = time.perf_counter()
                _baseline(store, w, p, o)
                return (time.perf_counter() - start) * 1000

            mine_ms, base_ms, ratio = side_by_side(repeats, ours, base)
            med = stats(mine_ms)["median"]
            rows.append(
                row(
                    f"{label}, {'page 10,000 calls deep' if deep else 'first page'}",
                    "ms",
                    mine_ms,
                    base_ms,
                    ratio,
                    ratio_meaning="ours / baseline time (lower is better)",
                    target="< 1000 ms, same calls as the baseline",
                    met=med < 1000 and same,
                    same_calls=same,
                )
            )
        pages_ms: list[float] = []
        query = _page_query(ours_args)
        client = _client(store)
        for deep in (False, True):
            cursor = _deep_cursor(store, where, params) if deep else None
            if deep and cursor is None:
                continue
            url = "/calls?" + urlencode([*query, *([("cursor", cursor)] if cursor else [])])
            assert client.get(url).status_code == 200, url  # warm-up, and it answers
            pages_ms = []
            for _ in range(repeats):
                start = time.perf_counter()
                client.get(url)
                pages_ms.append((time.perf_counter() - start) * 1000)
            rows.append(
                row(
                    f"{label}, the /calls page (HTML, with the match count), {'10,000 deep' if deep else 'first'}",
                    "ms",
                    pages_ms,
                    target="< 1000 ms",
                    met=stats(pages_ms)["median"] < 1000,
                )
            )
        counts = []
        for _ in range(3):
            start = time.perf_counter()
            n = ledger.count_calls(start=WINDOW[0], end=WINDOW[1], **ours_args)
            counts.append((time.perf_counter() - start) * 1000)
        rows.append(row(f"{label}, counting the matches ({n:,})", "ms", counts, target="", met=None))
    emit(
        args,
        {
            "question": 14,
            "title": "Calls explorer: first page and 10,000 calls deep, filtered and unfiltered",
            "baseline": "ORDER BY timestamp DESC LIMIT 50 OFFSET n on llm_calls with the same filters",
            "target": "every page under a second",
            "method": f"{repeats} repeats, ours and the baseline alternated; pages compared call by call",
            "rows": rows,
            "notes": notes,
        },
    )


if __name__ == "__main__":
    main()
