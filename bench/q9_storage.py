"""Q9: storage — bytes per stored call in ClickHouse after merges, with and without prompt content.

Real SDK spans (the shared generator: Zipf-like users over 1,000 tenants, seven models, caching, errors),
started over the last 7 days in time order, go through the real exporter path
(``CostExporter.export()`` in batches of 512, then ``force_flush()``), once with the defaults (no
content) and once with ``capture_content=True`` (prompts of a few hundred to a few thousand characters
with a shared system prompt, completions of up to ~1,500 words), each into its own database. Then
``OPTIMIZE TABLE … FINAL`` on every table, and sizes from ``system.parts`` (whole parts, on disk and
column data) and ``system.parts_columns`` (per column, from a wide-format copy of the table).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, parse_args, row
from _datagen import Population, SpanFactory
from spanledger import CostExporter, Store
from spanledger._store.schema import ROLLUP_TABLES

TABLES = ("llm_calls", *ROLLUP_TABLES)


def extra_args(parser: Any) -> None:
    parser.add_argument("--workdir", type=Path, default=Path.cwd())


def load(dsn: str, n: int, content: bool) -> Store:
    store = Store(dsn)
    exporter = CostExporter(store=store, capture_content=content)
    factory = SpanFactory(Population(), content=content)
    now = time.time_ns()
    start = now - 7 * 86_400 * 10**9
    chunk = 10_240
    for i in range(0, n, chunk):
        m = min(chunk, n - i)
        spans = factory.spans(m, start_ns=start + (now - start) * i // n, end_ns=start + (now - start) * (i + m) // n)
        for j in range(0, m, 512):
            exporter.export(spans[j : j + 512])
    if not exporter.force_flush():
        raise SystemExit("force_flush failed")
    exporter.shutdown()
    for table in TABLES:
        store.command(f"OPTIMIZE TABLE {store.database}.{table} FINAL")
    return store


def sizes(store: Store) -> dict[str, dict[str, int]]:
    rows = store.query(
        "SELECT table, sum(rows), sum(bytes_on_disk), sum(data_compressed_bytes), sum(data_uncompressed_bytes), count() "
        "FROM system.parts WHERE database = {db:String} AND active GROUP BY table",
        {"db": store.database},
    ).result_rows
    return {
        t: {"rows": int(r), "bytes_on_disk": int(d), "compressed": int(c), "uncompressed": int(u), "parts": int(p)}
        for t, r, d, c, u, p in rows
    }


def columns(store: Store) -> list[tuple[str, int, int]]:
    """Per-column sizes, from a wide-format copy (small parts are "compact": one file for all columns)."""
    db = store.database
    store.command(f"DROP TABLE IF EXISTS {db}.column_probe")
    store.command(f"CREATE TABLE {db}.column_probe AS {db}.llm_calls")
    store.command(
        f"ALTER TABLE {db}.column_probe MODIFY SETTING min_bytes_for_wide_part = 0, min_rows_for_wide_part = 0"
    )
    store.command(f"INSERT INTO {db}.column_probe SELECT * FROM {db}.llm_calls")
    store.command(f"OPTIMIZE TABLE {db}.column_probe FINAL")
    return [
        (name, int(c), int(u))
        for name, c, u in store.query(
            "SELECT column, sum(column_data_compressed_bytes) AS c, sum(column_data_uncompressed_bytes) "
            "FROM system.parts_columns WHERE database = {db:String} AND table = 'column_probe' AND active "
            "GROUP BY column ORDER BY c DESC",
            {"db": store.database},
        ).result_rows
    ]


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], extra_args)
    n = 5_000 if args.quick else 50_000
    dsn = f"chdb://{args.workdir / 'chdb'}?database=" + "{db}"
    rows, notes, detail = [], [], {}
    for content in (False, True):
        label = "with content (capture_content=True)" if content else "without content (default)"
        store = load(dsn.format(db="q9_content" if content else "q9_plain"), n, content)
        s = sizes(store)
        calls = s["llm_calls"]["rows"]
        if calls != n:
            raise SystemExit(f"{label}: {calls} rows stored, expected {n}")
        raw = s["llm_calls"]
        rollups = sum(s[t]["bytes_on_disk"] for t in TABLES[1:] if t in s)
        per_call = raw["bytes_on_disk"] / calls
        rows.append(
            row(
                f"{label}: llm_calls, on disk",
                "bytes/call",
                [per_call],
                target="≤ 100 B" if not content else "— (print)",
                met=(per_call <= 100) if not content else None,
                column_data_bytes_per_call=raw["compressed"] / calls,
                uncompressed_bytes_per_call=raw["uncompressed"] / calls,
                rollups_bytes_per_call=rollups / calls,
                parts=raw["parts"],
            )
        )
        rows.append(
            row(
                f"{label}: the {len(TABLES) - 1} rollups, on disk",
                "bytes/call",
                [rollups / calls],
                target="— (print)",
                rollup_rows={t: s[t]["rows"] for t in TABLES[1:] if t in s},
            )
        )
        cols = columns(store)
        detail[label] = {"tables": s, "columns": cols}
        top = ", ".join(f"{name} {c / calls:.1f}" for name, c, _u in cols[:8])
        notes.append(f"{label}: largest columns in bytes/call: {top}")
    emit(
        args,
        {
            "question": 9,
            "title": "Storage per call after merges",
            "baseline": "—",
            "target": "print; ≤ 100 B per call without content",
            "method": (
                f"{n:,} spans through CostExporter.export() per variant, then OPTIMIZE TABLE FINAL; "
                "bytes_on_disk and data_compressed_bytes from system.parts, per column from system.parts_columns"
            ),
            "rows": rows,
            "notes": notes,
            "detail": detail,
        },
    )


if __name__ == "__main__":
    main()
