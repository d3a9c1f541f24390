"""What the store holds, and emptying it: the few statements the status report and the demo need."""

from __future__ import annotations

from typing import Any

from .._errors import SpanledgerError
from .schema import KEYS_TABLE, RAW_TABLE, ROLLUP_TABLES
from .store import Store


def summary(store: Store) -> dict[str, Any]:
    """Calls, priced cost, unpriced calls and the newest insert; an ``error`` entry when it cannot be read."""
    try:
        row = store.query(
            f"SELECT count(), sum(ifNull(cost, 0)), countIf(cost IS NULL), max(inserted_at) "
            f"FROM {store.database}.{RAW_TABLE}"
        ).result_rows[0]
    except SpanledgerError as exc:
        return {"error": str(exc)}
    return {
        "calls": int(row[0]),
        "cost_usd": format(row[1], "f"),
        "unpriced_calls": int(row[2]),
        "last_insert": row[3].isoformat() if row[0] else None,
    }


def calls_by_service(store: Store, service_name: str) -> tuple[int, int]:
    """How many stored calls came from ``service_name``, and how many from anything else."""
    row = store.query(
        f"SELECT countIf(service_name = {{s:String}}), countIf(service_name != {{s:String}}) "
        f"FROM {store.database}.{RAW_TABLE}",
        {"s": service_name},
    ).result_rows[0]
    return int(row[0]), int(row[1])


def empty(store: Store) -> None:
    """Remove every call from the raw table, every rollup and the dedup keys (the schema stays)."""
    for table in (RAW_TABLE, *ROLLUP_TABLES, KEYS_TABLE):
        store.command(f"TRUNCATE TABLE IF EXISTS {store.database}.{table}")
