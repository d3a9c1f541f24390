"""What the store holds, and emptying it: the few statements the status report and the demo need."""

from __future__ import annotations

from typing import Any

from .._errors import SpanledgerError
from .schema import KEYS_TABLE, RAW_TABLE, ROLLUP_TABLES
from .store import Store
from .tool_schema import TOOL_ROLLUP, TOOL_TABLE


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
    """How many stored calls came from ``service_name``, and how many calls and tool executions from anything
    else."""
    row = store.query(
        f"SELECT countIf(service_name = {{s:String}}), countIf(service_name != {{s:String}}) "
        f"FROM {store.database}.{RAW_TABLE}",
        {"s": service_name},
    ).result_rows[0]
    tools = store.query(
        f"SELECT count() FROM {store.database}.{TOOL_TABLE} WHERE service_name != {{s:String}}", {"s": service_name}
    ).result_rows[0]
    return int(row[0]), int(row[1]) + int(tools[0])


def empty(store: Store) -> None:
    """Remove every call and tool execution from the raw tables, every rollup and the dedup keys (the schema
    and the customer profiles stay)."""
    for table in (RAW_TABLE, *ROLLUP_TABLES, TOOL_TABLE, TOOL_ROLLUP, KEYS_TABLE):
        store.command(f"TRUNCATE TABLE IF EXISTS {store.database}.{table}")
