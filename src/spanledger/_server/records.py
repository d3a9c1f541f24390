"""One stored call by its trace and span id: the record a dashboard row opens."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from .._store.schema import RAW_TABLE
from .._store.store import Store


def find_call(store: Store, trace_id: str, span_id: str, *, tenant_id: str | None) -> dict[str, Any] | None:
    """The full record of a call, shaped like ``Ledger.user(...).calls``; ``tenant_id`` limits the search."""
    parameters: dict[str, Any] = {"trace": int(trace_id, 16), "span": int(span_id, 16)}
    tenant = ""
    if tenant_id is not None:
        parameters["tenant"] = tenant_id
        tenant = " AND tenant_id = {tenant:String}"
    result = store.query(
        f"SELECT * FROM {store.database}.{RAW_TABLE} "
        f"WHERE trace_id = {{trace:UInt128}} AND span_id = {{span:UInt64}}{tenant} "
        "ORDER BY inserted_at DESC LIMIT 1",
        parameters,
    )
    if not result.result_rows:
        return None
    row = dict(zip(result.column_names, result.result_rows[0], strict=True))
    row["trace_id"] = f"{row['trace_id']:032x}"
    row["span_id"] = f"{row['span_id']:016x}"
    row["parent_span_id"] = f"{row['parent_span_id']:016x}"
    for key in ("timestamp", "inserted_at"):
        value = row.get(key)
        if isinstance(value, datetime):
            row[key] = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return row
