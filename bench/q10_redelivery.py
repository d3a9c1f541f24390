"""Q10: what counting a re-delivered call once costs — the store look-up the flusher makes before every insert.

A block of calls is looked up in ``call_keys`` (``Store.stored_call_keys``: the ids of every call stored in
the dedup window, 48 hours by default, ordered by span id, 256-row granules) before it is inserted, so a
call delivered again after a crash, a restart or a client's retry — to this process or another writer — is
dropped. This measures that look-up on a store of 10M calls (100k users, 30 days; ``--calls``), every one of
them inserted within the window (the worst case: ``call_keys`` holds all 10M keys), side by side with
inserting the same block (``Store.insert_calls`` through the materialized views), for:

* a **fresh** block of 2,000 calls from the last minutes (the steady state: nothing found);
* a **re-delivered** block: 2,000 calls the store already holds (everything found);
* a **scattered** block: 2,000 fresh calls spread over the whole 30 days (a late backfill: the worst case).

Memory: the in-process key memory (100,000 recent calls) measured with ``tracemalloc``. Disk: the bytes
``call_keys`` takes per call it holds (``system.parts``).
"""

from __future__ import annotations

import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np

from _common import Timer, emit, parse_args, round_robin, row
from _datagen import DATA_END, Population, Templates, call_blocks
from spanledger import Store
from spanledger._ingest.pipeline import RECENT_KEYS
from spanledger._ingest.recent import Recent as _Recent
from spanledger._model.call import LLMCall
from spanledger._store.store import RAW_COLUMN_NAMES

BLOCK = 2_000
_TS, _TRACE, _SPAN = (RAW_COLUMN_NAMES.index(c) for c in ("timestamp", "trace_id", "span_id"))


def extra_args(parser: Any) -> None:
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--calls", type=int, default=None, help="calls in the store (default 10M; --quick 200k)")
    parser.add_argument("--reuse", action="store_true", help="use the store already in --workdir as it is")


def lookup(store: Store, cols: list[list[Any]]) -> set[tuple[int, int]]:
    return store.stored_call_keys(list(zip(cols[_TRACE], cols[_SPAN], strict=True)))


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], extra_args)
    total = args.calls or (200_000 if args.quick else 10_000_000)
    repeats = 5 if args.quick else 9
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="spanledger-bench-q10-"))
    store = Store(f"chdb://{workdir / 'chdb'}?database=q10")
    pop = Population(users=100_000, tenants=1_000)
    templates = Templates(np.random.default_rng(7))
    held_calls = store.query(f"SELECT count() FROM {store.database}.llm_calls").result_rows[0][0]
    with Timer() as t_build:
        if not (args.reuse and held_calls):
            for cols in call_blocks(pop, templates, total, block=min(250_000, total), seed=1000, sliced=False):
                store.insert_calls(cols)
    total = store.query(f"SELECT count() FROM {store.database}.llm_calls").result_rows[0][0]
    for table in ("llm_calls", "call_keys"):
        store.command(f"OPTIMIZE TABLE {store.database}.{table} FINAL")
    keys_held, keys_bytes = store.query(
        f"SELECT sum(rows), sum(bytes_on_disk) FROM system.parts WHERE database = '{store.database}' "
        "AND table = 'call_keys' AND active"
    ).result_rows[0]

    def fresh(seed: int, days: float) -> list[list[Any]]:
        blocks = call_blocks(pop, templates, BLOCK, block=BLOCK, days=days, end=DATA_END, seed=seed, sliced=False)
        return next(blocks)

    held = store.query(
        f"SELECT * EXCEPT inserted_at FROM {store.database}.llm_calls ORDER BY rand() LIMIT {BLOCK}"
    ).result_columns
    held = [list(c) for c in held]
    held[_TS] = [_micros(t) for t in held[_TS]]

    rows: list[dict[str, Any]] = []
    cases = {
        "fresh block (last minutes)": lambda i: fresh(5000 + i, 10 / 1440),
        "re-delivered block": lambda i: held,
        "scattered block (30 days)": lambda i: fresh(6000 + i, 30),
    }
    for case, make in cases.items():
        found: list[int] = []

        def look(i: int, make: Any = make, found: list[int] = found) -> float:
            cols = make(i)
            with Timer() as t:
                found.append(len(lookup(store, cols)))
            return t.seconds * 1000

        def insert(i: int, make: Any = make, case: str = case) -> float:
            cols = make(i)
            with Timer() as t:
                store.insert_calls(cols, dedup_token=f"bench-{case}-{i}-{time.time_ns()}")
            return t.seconds * 1000

        ours, base = round_robin(repeats, look, insert)
        ratio = [a / b for a, b in zip(ours, base, strict=True)]
        rows.append(
            row(
                f"{case}: look-up vs insert of {BLOCK:,} calls",
                "ms",
                ours,
                base,
                ratio,
                ratio_meaning="look-up time / insert time (the share the dedup adds to an insert)",
                found=found[0],
            )
        )

    calls = [_call(n) for n in range(RECENT_KEYS)]
    tracemalloc.start()
    recent = _Recent(RECENT_KEYS)
    recent.claim(calls)
    used = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    rows.append(row(f"in-memory key memory, {RECENT_KEYS:,} recent calls", "MB", [used / 1e6]))
    rows.append(row(f"call_keys on disk, {keys_held:,} keys", "B/call", [keys_bytes / max(1, keys_held)]))
    emit(
        args,
        {
            "question": 10,
            "title": "Re-delivered calls counted once: the cost of the store look-up before each insert",
            "baseline": f"inserting the same {BLOCK:,}-call block (Store.insert_calls, six materialized views)",
            "target": "documented (issue 11: the window's memory, disk and insert time, with numbers)",
            "method": __doc__,
            "rows": rows,
            "notes": [f"store: {total:,} calls (built in {t_build.seconds:.0f} s this run)"],
        },
    )


def _micros(t: Any) -> int:
    from datetime import UTC, datetime

    value = t if t.tzinfo else t.replace(tzinfo=UTC)
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _call(n: int) -> LLMCall:
    from datetime import UTC, datetime

    return LLMCall(
        timestamp=datetime(2026, 11, 1, tzinfo=UTC),
        trace_id=(n << 64) | n,
        span_id=n + 1,
        parent_span_id=0,
        duration_us=0,
        provider="openai",
        model="gpt-4o-mini",
        request_model="gpt-4o-mini",
        operation="chat",
        input_tokens=0,
        output_tokens=0,
        cache_read_tokens=0,
        cache_write_tokens=0,
        reasoning_tokens=0,
        user_id="u",
        user_source="",
        tenant_id="t",
        tags={},
        is_error=False,
        error_type="",
        response_id=f"chatcmpl-{n:029d}",
        service_name="",
        source="otel-genai",
    )


if __name__ == "__main__":
    main()
