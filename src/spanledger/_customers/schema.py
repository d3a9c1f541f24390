"""The ``customers`` table: one row per profile version, the newest kept (``ReplacingMergeTree``).

Keyed by ``(tenant_id, user_id)`` like the calls a profile names. A write that changes nothing is never
made (the import compares first), so re-importing the same file adds no version; reads use ``FINAL``, so a
profile is its newest version even before a merge.
"""

from __future__ import annotations

from .._model.customer import CUSTOMER_COLUMNS

CUSTOMERS_TABLE = "customers"


def customers_ddl(db: str) -> tuple[str, ...]:
    """The table."""
    columns = ",\n    ".join(f"{c.name} {c.ch_type}" for c in CUSTOMER_COLUMNS)
    return (
        f"""CREATE TABLE IF NOT EXISTS {db}.{CUSTOMERS_TABLE} (
    {columns}
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (tenant_id, user_id)""",
    )
