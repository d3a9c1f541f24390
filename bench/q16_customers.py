"""Q16: what customer profiles and tool use cost — the users page, search, inactive customers, one user, an
import, and ingest — each side by side with the same work without them, in the same run.

Data: ``--calls`` LLM calls (default 1M; ``--quick`` 100k) from the shared generator (100k users in 1,000
tenants, Zipf-like, 30 days), bulk-loaded through the materialized views; 100,000 profiles, the most one file
may hold — 94,000 users, 5,000 customers who never called, one per tenant — imported through the real import
path; ``--tools`` tool
executions (default 200k; 20k quick) spread over the same users and window, inserted through their view. Then
``OPTIMIZE … FINAL`` on every table (the merged steady state).

Cases (ours | baseline), ``--repeats`` alternating runs each:

* users page (50 rows, last 30 days, by cost): with the names and tool-count look-ups | with both look-ups
  stubbed out (what the page cost before profiles and tools);
* search by name (a surname shared by ~1 in 10 profiles) | search by id alone (a substring of ~40 ids), the
  profile match left out (the query before profiles);
* ``include_inactive`` page 1 | the plain page (the extra cost is counting the customers with no calls);
* one user (the heaviest): with profile and per-tool breakdown | without them;
* importing the 100,000 profiles (checked, compared, written) | inserting the same rows with
  ``Store.insert_rows``;
  and importing the same file again (nothing written) | the same baseline;
* the exporter's ``ingest`` of 10,000 spans of which 20 % are tool spans | 10,000 LLM spans.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np

from _common import Timer, emit, parse_args, row, side_by_side
from _datagen import DATA_END, Population, Templates, call_blocks
from spanledger import CostExporter, Ledger, Store, testing
from spanledger._customers import store as profiles
from spanledger._customers.profiles import MAX_ROWS, read_text
from spanledger._ingest import codec
from spanledger._model.customer import CUSTOMER_COLUMNS
from spanledger._query import detail, sql, tools
from spanledger._store.schema import ROLLUP_TABLES
from spanledger._store.tool_schema import TOOL_ROLLUP, TOOL_TABLE

START, END = DATA_END - timedelta(days=30), DATA_END
SURNAMES = ("Okafor", "Silva", "Chen", "Novak", "Haddad", "Berg", "Kim", "Rossi", "Patel", "Adams")


def extra_args(parser: Any) -> None:
    parser.add_argument("--calls", type=int, default=None, help="LLM calls to load (default 1,000,000)")
    parser.add_argument("--tools", type=int, default=None, help="tool executions to load (default 200,000)")
    parser.add_argument("--repeats", type=int, default=None, help="runs of each case (default 7)")
    parser.add_argument("--workdir", type=Path, default=None, help="where the store goes (default: a temp dir)")


@contextmanager
def stubbed(module: Any, name: str, value: Callable[..., Any]) -> Iterator[None]:
    saved = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, saved)


def timed(fn: Callable[[], Any]) -> Callable[[int], float]:
    """Milliseconds ``fn`` takes."""

    def run(_i: int) -> float:
        started = time.perf_counter()
        fn()
        return (time.perf_counter() - started) * 1000

    return run


def without(*stubs: tuple[Any, str, Callable[..., Any]]) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    def wrap(fn: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            with stubbed(*stubs[0]):
                if len(stubs) == 1:
                    return fn()
                return without(*stubs[1:])(fn)()

        return run

    return wrap


def profiles_csv(pop: Population, users: int, extra: int) -> str:
    """A profile for the first ``users`` users (surnames repeat every 10 users, so a surname matches ~1 % of
    them), ``extra`` customers who never called, and one per tenant."""
    lines = ["user_id,tenant_id,display_name,email,plan"]
    for i, user in enumerate(pop.user_names[:users]):
        t = int(pop.user_tenant[i])
        surname = SURNAMES[i % len(SURNAMES)] + (f"-{i // 1000}" if i % 1000 else "")
        lines.append(f"{user},{pop.tenant_names[t]},Customer {i} {surname},c{i}@example.com,{pop.tenant_plan[t]}")
    for j in range(extra):
        lines.append(f"signup_{j:05d},{pop.tenant_names[j % pop.tenants]},New Signup {j},new{j}@example.com,trial")
    for t, name in enumerate(pop.tenant_names):
        lines.append(f",{name},Organisation {t},billing@{name}.example,{pop.tenant_plan[t]}")
    return "\n".join(lines) + "\n"


def tool_blocks(pop: Population, total: int, block: int = 100_000) -> Iterator[list[list[Any]]]:
    rng = np.random.default_rng(11)
    start_us = int(START.timestamp() * 1_000_000)
    span_us = 30 * 86_400 * 1_000_000
    names = ("search_docs", "run_sql", "get_weather", "send_email", "fetch_url")
    done = 0
    while done < total:
        n = min(block, total - done)
        users = rng.choice(pop.users, size=n, p=pop.user_p).tolist()
        cols = {
            "timestamp": np.sort(rng.integers(start_us, start_us + span_us, size=n)).tolist(),
            "trace_id": rng.integers(1, 2**63, size=n, dtype=np.int64).tolist(),
            "span_id": rng.integers(1, 2**63, size=n, dtype=np.int64).tolist(),
            "parent_span_id": [0] * n,
            "duration_us": rng.integers(1_000, 2_000_000, size=n).tolist(),
            "tool_name": [names[k] for k in rng.integers(0, len(names), size=n).tolist()],
            "tool_type": ["function"] * n,
            "tool_call_id": [""] * n,
            "user_id": [pop.user_names[u] for u in users],
            "tenant_id": [pop.tenant_names[int(pop.user_tenant[u])] for u in users],
            "tags": [{}] * n,
            "is_error": (rng.random(n) < 0.03).astype(int).tolist(),
            "error_type": [""] * n,
            "service_name": ["api"] * n,
            "source": ["otel-genai"] * n,
            "flags": [[]] * n,
        }
        yield [cols[name] for name in codec.TOOLS.names]
        done += n


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], extra_args)
    calls = args.calls or (100_000 if args.quick else 1_000_000)
    tool_rows = args.tools or (20_000 if args.quick else 200_000)
    repeats = args.repeats or (3 if args.quick else 7)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="spanledger-q16-"))
    store = Store(f"chdb://{workdir / 'store'}")
    pop = Population()
    notes: list[str] = []
    with Timer() as t_load:
        for block in call_blocks(pop, Templates(np.random.default_rng(3)), calls, sliced=False):
            store.insert_calls(block)
        for block in tool_blocks(pop, tool_rows):
            store.insert_rows(TOOL_TABLE, block, codec.TOOLS.names, codec.TOOLS.types, column_oriented=True)
    text = profiles_csv(pop, MAX_ROWS - 5_000 - pop.tenants, 5_000)  # one file at most holds MAX_ROWS
    changes = read_text(text, format="csv")
    with Timer() as t_import:
        first = profiles.upsert(store, changes)
    for table in (*ROLLUP_TABLES, TOOL_ROLLUP, "customers"):
        store.command(f"OPTIMIZE TABLE {store.database}.{table} FINAL")
    notes.append(
        f"loaded {calls:,} calls and {tool_rows:,} tool executions in {t_load.seconds:.0f} s; first import of "
        f"{first.rows:,} profiles ({first.created:,} created) in {t_import.seconds:.1f} s"
    )
    ledger = Ledger(store)
    no_names = (profiles, "names", lambda *a, **k: {})
    no_tools = (tools, "per_pair", lambda *a, **k: {})
    id_only = sql.Query.where_search
    no_match = (sql.Query, "where_search", lambda self, column, search, also=None: id_only(self, column, search))
    no_profile = (profiles, "find", lambda *a, **k: None)
    no_tool_use = (detail.tool_use, "tools", lambda *a, **k: type("P", (), {"rows": []})())
    page = dict(limit=50, start=START, end=END, traces=False)
    rows = []

    def case(name: str, ours: Callable[[], Any], base: Callable[[], Any], meaning: str) -> None:
        mine, baseline, ratio = side_by_side(repeats, timed(ours), timed(base))
        rows.append(row(name, "ms", mine, baseline, ratio, ratio_meaning=meaning))

    case(
        "users page (50 rows, 30 days): names + tool counts | neither",
        lambda: ledger.users(**page),
        without(no_names, no_tools)(lambda: ledger.users(**page)),
        "page with the two look-ups / page without",
    )
    by_name = ledger.users(search="Okafor", **page)
    by_id = ledger.users(search="user_0001", **page)
    notes.append(f"search 'Okafor' matches {by_name.total} users; 'user_0001' (ids) {by_id.total}")
    case(
        "search by name or e-mail | search by id only",
        lambda: ledger.users(search="Okafor", **page),
        without(no_match)(lambda: ledger.users(search="user_0001", **page)),
        "name search / id search",
    )
    inactive = ledger.users(include_inactive=True, **page)
    notes.append(f"include_inactive: {inactive.inactive:,} customers with no calls in the window")
    case(
        "include_inactive page 1 | plain page 1",
        lambda: ledger.users(include_inactive=True, **page),
        lambda: ledger.users(**page),
        "with inactive / without",
    )
    _tenant, user = pop.top_user()
    case(
        "one user (heaviest): profile + by tool | neither",
        lambda: ledger.user(user, start=START, end=END),
        without(no_profile, no_tool_use)(lambda: ledger.user(user, start=START, end=END)),
        "with / without",
    )
    names = [c.name for c in CUSTOMER_COLUMNS]
    types = [c.ch_type for c in CUSTOMER_COLUMNS]
    databases = iter(range(1_000_000))

    def empty_store() -> Store:  # its schema created before the clock starts
        return Store(f"chdb://{workdir / 'store'}?database=q16_import_{next(databases)}")

    def import_into(target: Callable[[], Store]) -> Callable[[int], float]:
        def run(_i: int) -> float:
            into = target()
            started = time.perf_counter()
            profiles.upsert(into, changes)
            return (time.perf_counter() - started) * 1000

        return run

    def insert_rows(_i: int) -> float:
        into, now = empty_store(), DATA_END
        rows_ = [
            [c.tenant_id, c.user_id, *(c.values.get(k, "") for k in ("display_name", "email", "plan")), {}, now, now]
            for c in changes
        ]
        started = time.perf_counter()
        into.insert_rows("customers", rows_, names, types)
        return (time.perf_counter() - started) * 1000

    def timed_case(name: str, ours: Callable[[int], float], base: Callable[[int], float], meaning: str) -> None:
        mine, baseline, ratio = side_by_side(repeats, ours, base)
        rows.append(row(name, "ms", mine, baseline, ratio, ratio_meaning=meaning))

    timed_case(
        f"import {len(changes):,} profiles into an empty table | insert the same rows",
        import_into(empty_store),
        insert_rows,
        "import / insert",
    )
    timed_case(
        f"import the same {len(changes):,} profiles again (nothing written) | insert the rows",
        import_into(lambda: store),
        insert_rows,
        "re-import / insert",
    )
    llm_spans = [testing.llm_span(n, user=f"u{n % 500}", span_id=10_000_000 + n) for n in range(10_000)]
    mixed = [
        testing.tool_span(n, user=f"u{n % 500}", span_id=20_000_000 + n) if n % 5 == 0 else llm_spans[n]
        for n in range(10_000)
    ]

    def ingest(spans: list[Any]) -> Callable[[int], float]:
        def run(_i: int) -> float:
            k = next(databases)
            exporter = CostExporter(
                f"chdb://{workdir / 'store'}?database=q16_ingest_{k}",
                spool_dir=workdir / f"spool-{k}",
                flush_interval_ms=600_000,
            )
            started = time.perf_counter()
            exporter.ingest(spans)
            took = (time.perf_counter() - started) * 1000
            exporter.shutdown()
            return took

        return run

    timed_case(
        "exporter ingest of 10,000 spans, 20 % tool spans | 10,000 LLM spans",
        ingest(mixed),
        ingest(llm_spans),
        "mixed / LLM only",
    )
    emit(
        args,
        {
            "question": 11,
            "title": "customer profiles and tool use: what they add to pages, search, imports and ingest",
            "baseline": "the same work without profiles or tools, in the same run",
            "target": "",
            "method": __doc__,
            "rows": rows,
            "notes": notes,
        },
    )


if __name__ == "__main__":
    main()
