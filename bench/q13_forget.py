"""Q13: forgetting one heavy user in a 10M-call store — seconds and rows rewritten.

The store: 10M calls (100k users, 1,000 tenants, 30 days; ``--calls``), bulk-loaded through the materialized
views as the exporter writes them. Each repeat takes two of the heaviest users (ranks 2k+1 and 2k+2 in the
store: neighbours, of similar size) and, in alternating order, applies:

* **ours** — ``forget(store, user)`` (delete mode): a synchronous ``ALTER TABLE … DELETE`` of the user's rows
  in every table with a ``user_id`` column, then a rebuild of the six rollups for the user's months and
  tenants (``REPLACE PARTITION``), checked day by day against ``llm_calls``, and the audit rows;
* **baseline** — a plain lightweight ``DELETE FROM llm_calls WHERE user_id = …``: the raw rows only, hidden by
  a mask until a merge removes them; the rollups still count the user afterwards (it is not a forget).

"Rows rewritten" counts the rows of every part that the operation created (new part names in
``system.parts`` of the database, rollups included): rewritten data for ours; for the lightweight DELETE,
parts whose rows are only masked (it writes a mask column, not the rows).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np

from _common import Timer, emit, parse_args, round_robin, row
from _datagen import Population, Templates, call_blocks
from spanledger import Store
from spanledger._privacy.forget import forget
from spanledger._store.rebuild import rebuild

KEY = "q13-benchmark-key-0123456789"


def extra_args(parser: Any) -> None:
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--calls", type=int, default=None, help="calls in the store (default 10M; --quick 200k)")
    parser.add_argument("--repeats", type=int, default=None, help="pairs of users (default 3; --quick 2)")


def parts(store: Store) -> dict[str, int]:
    """Active parts of the database → their rows."""
    return {
        f"{table}/{name}": int(rows)
        for table, name, rows in store.query(
            "SELECT table, name, rows FROM system.parts WHERE database = {db:String} AND active",
            {"db": store.database},
        ).result_rows
    }


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], extra_args)
    total = args.calls or (200_000 if args.quick else 10_000_000)
    repeats = args.repeats or (2 if args.quick else 3)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="spanledger-bench-q13-"))
    store = Store(f"chdb://{workdir / 'chdb'}?database=q13")
    pop = Population(users=100_000, tenants=1_000)
    templates = Templates(np.random.default_rng(7))
    with Timer() as t_build:
        for cols in call_blocks(pop, templates, total, block=min(250_000, total), seed=1300, sliced=False):
            store.insert_calls(cols)
    for table in [r[0] for r in store.query("SELECT name FROM system.tables WHERE database = 'q13'").result_rows]:
        if not table.endswith("_mv"):
            store.command(f"OPTIMIZE TABLE q13.{table} FINAL")
    held = store.query("SELECT count() FROM q13.llm_calls").result_rows[0][0]
    heaviest = [
        str(r[0])
        for r in store.query(
            f"SELECT user_id FROM q13.llm_calls WHERE user_id != '' GROUP BY user_id ORDER BY count() DESC "
            f"LIMIT {2 * repeats}"
        ).result_rows
    ]
    sizes: dict[str, int] = {}
    written: dict[str, list[float]] = {"ours": [], "baseline": []}

    def user(i: int, offset: int) -> str:
        return heaviest[2 * i + offset]

    def rows_of(name: str) -> int:
        found = store.query("SELECT count() FROM q13.llm_calls WHERE user_id = {u:String}", {"u": name})
        return int(found.result_rows[0][0])

    def ours(i: int) -> float:
        name = user(i, i % 2)
        sizes[name] = rows_of(name)
        before = parts(store)
        with Timer() as t:
            report = forget(store, name, key=KEY, spool_dir=workdir / "spool")
        assert report.verified and report.rows.get("llm_calls") == sizes[name], report
        written["ours"].append(sum(n for p, n in parts(store).items() if p not in before))
        return t.seconds

    def baseline(i: int) -> float:
        name = user(i, 1 - i % 2)
        sizes[name] = rows_of(name)
        before = parts(store)
        with Timer() as t:
            store.command("DELETE FROM q13.llm_calls WHERE user_id = {u:String}", {"u": name})
        written["baseline"].append(sum(n for p, n in parts(store).items() if p not in before))
        rebuild(store, users=[name], grace_seconds=0)  # untimed: the rollups agree with llm_calls again
        return t.seconds

    mine, base = round_robin(repeats, ours, baseline)
    ratio = [a / b for a, b in zip(mine, base, strict=True)]
    calls_each = list(sizes.values())
    rows = [
        row(
            f"forget one heavy user ({min(calls_each):,}–{max(calls_each):,} calls) in {held:,}",
            "s",
            mine,
            base,
            ratio,
            ratio_meaning="forget time / lightweight DELETE time",
        ),
        row(
            "rows in parts the operation wrote",
            "rows",
            written["ours"],
            written["baseline"],
            [a / b if b else float("nan") for a, b in zip(written["ours"], written["baseline"], strict=True)],
            ratio_meaning="ours / baseline (the baseline's parts only get a mask column)",
        ),
    ]
    emit(
        args,
        {
            "question": 13,
            "title": "Forget one heavy user: seconds and rows rewritten",
            "baseline": "a plain lightweight DELETE of the user's raw rows (rollups left counting them)",
            "target": "documented (issue 15)",
            "method": __doc__,
            "rows": rows,
            "notes": [
                f"store: {held:,} calls (built in {t_build.seconds:.0f} s this run); the {2 * repeats} heaviest users",
                "after each lightweight DELETE an untimed rebuild makes the rollups agree with llm_calls again",
            ],
        },
    )


if __name__ == "__main__":
    main()
