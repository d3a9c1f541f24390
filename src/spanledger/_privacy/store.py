"""The privacy room's SQL: which tables hold user ids, counting, deleting and rewriting a user's rows, and the
forget audit.

Every table of the ledger's database with a ``user_id`` column is found through ``system.columns``, so tables
other rooms add (budgets, alerts, profiles …) are reached without being named here. A table's rows are deleted
with a synchronous ``ALTER TABLE … DELETE`` (a mutation: the data is rewritten without them, not only hidden,
and ClickHouse finishes it after a crash). They are rewritten (anonymized) partition by partition: the
partition's rows, the user's with the pseudonym in place of the id and no content, go into a table aside that
then replaces the partition (``REPLACE PARTITION``) — readers see the old partition or the new one, never
both, so a total never counts a call twice or not at all, and a run cut short leaves each partition whole.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .._errors import ConfigError, StoreError
from .._store import lease
from .._store.schema import AUDIT_TABLE, JOBS_TABLE
from .._store.store import Store

CONTENT_COLUMNS = ("prompt", "completion")


@dataclass(frozen=True, slots=True)
class Target:
    """A table that holds user ids."""

    table: str
    engine: str
    tenant: bool
    """It has a ``tenant_id`` column: a forget narrowed to a tenant narrows there."""
    content: tuple[str, ...]
    """Its captured-content columns (cleared by an anonymization)."""


def targets(store: Store) -> list[Target]:
    """Every table of the ledger's database with a ``user_id`` column (views left out: they hold nothing).

    Raises:
        ConfigError: One of them cannot be rewritten (not a MergeTree table), before anything is changed.
    """
    columns: dict[str, set[str]] = {}
    for table, name in store.query(
        "SELECT table, name FROM system.columns WHERE database = {db:String} "
        "AND name IN ('user_id', 'tenant_id', 'prompt', 'completion')",
        {"db": store.database},
    ).result_rows:
        columns.setdefault(str(table), set()).add(str(name))
    engines = {
        str(name): str(engine)
        for name, engine in store.query(
            "SELECT name, engine FROM system.tables WHERE database = {db:String}", {"db": store.database}
        ).result_rows
    }
    out, refused = [], []
    for table in sorted(t for t, names in columns.items() if "user_id" in names):
        engine = engines.get(table, "")
        if engine.endswith("View"):
            continue
        if "MergeTree" not in engine:
            refused.append(f"{table} ({engine})")
            continue
        names = columns[table]
        out.append(Target(table, engine, "tenant_id" in names, tuple(c for c in CONTENT_COLUMNS if c in names)))
    if refused:
        raise ConfigError(
            f"cannot forget: {', '.join(refused)} hold user ids but are not MergeTree tables, which forget can "
            "rewrite; nothing was changed"
        )
    return out


def _where(target: Target, tenant: str | None, ids: str = "user_id IN {pv_ids:Array(String)}") -> str:
    """The rows of the ids (``ids``: the condition naming them), in ``tenant`` when the table's rows name one."""
    scope = " AND tenant_id = {pv_tenant:String}" if tenant is not None and target.tenant else ""
    return ids + scope


def _params(ids: Sequence[str], tenant: str | None, **more: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"pv_ids": list(ids), **more}
    if tenant is not None:
        params["pv_tenant"] = tenant
    return params


def count_rows(store: Store, target: Target, ids: Sequence[str], tenant: str | None) -> int:
    """The rows of ``target`` that belong to these ids (in ``tenant``, when its rows name tenants)."""
    db = store.database
    rows = store.query(f"SELECT count() FROM {db}.{target.table} WHERE {_where(target, tenant)}", _params(ids, tenant))
    return int(rows.result_rows[0][0])


def delete_rows(store: Store, target: Target, ids: Sequence[str], tenant: str | None) -> None:
    """Delete those rows for good: a synchronous mutation rewrites the parts that held them.

    ClickHouse keeps a mutation's text (``system.mutations``, and a file beside the table's parts) after it
    has run, with its parameters substituted: the condition therefore names the ids' SipHash-128 digests,
    never the ids (a digest of an e-mail is not the e-mail; it is what the mutation record keeps)."""
    digests = store.query(
        "SELECT hex(sipHash128(id)) FROM (SELECT arrayJoin({pv_ids:Array(String)}) AS id)", {"pv_ids": list(ids)}
    ).result_rows
    hexes = ", ".join(f"'{row[0]}'" for row in digests if all(c in "0123456789ABCDEF" for c in row[0]))
    if not hexes:
        return
    where = _where(target, tenant, f"hex(sipHash128(user_id)) IN ({hexes})")
    store.command(
        f"ALTER TABLE {store.database}.{target.table} DELETE WHERE {where}",
        {"pv_tenant": tenant} if tenant is not None and target.tenant else None,
        settings={"mutations_sync": 2},
    )


def anonymize_rows(store: Store, target: Target, ids: Sequence[str], tenant: str | None, pseudonym: str) -> int:
    """Give those rows ``pseudonym`` instead of their id and no content, one partition swap at a time (see the
    module docs); returns the rows written into the swapped partitions. Renews the maintenance lease as it goes."""
    db = store.database
    where = _where(target, tenant)
    params = _params(ids, tenant, pv_pseudonym=pseudonym)
    partitions = [
        str(row[0])
        for row in store.query(
            f"SELECT DISTINCT _partition_id FROM {db}.{target.table} WHERE {where} ORDER BY 1", params
        ).result_rows
    ]
    replaced = [f"if({where}, {{pv_pseudonym:String}}, user_id) AS user_id"]
    replaced += [f"if({where}, '', {column}) AS {column}" for column in target.content]
    written = 0
    for partition in partitions:
        lease.take(store)
        aside = f"{target.table}__anon_{secrets.token_hex(4)}"
        store.command(f"CREATE TABLE {db}.{aside} AS {db}.{target.table}")
        try:
            store.command(
                f"INSERT INTO {db}.{aside} SELECT * REPLACE ({', '.join(replaced)}) FROM {db}.{target.table} "
                "WHERE _partition_id = {pv_partition:String}",
                {**params, "pv_partition": partition},
            )
            written += int(store.query(f"SELECT count() FROM {db}.{aside}").result_rows[0][0])
            store.command(f"ALTER TABLE {db}.{target.table} REPLACE PARTITION ID '{partition}' FROM {db}.{aside}")
        finally:
            # a table aside left behind holds no more than the table itself, and the next forget finds it
            with contextlib.suppress(StoreError):
                store.command(f"DROP TABLE IF EXISTS {db}.{aside} SYNC")
    return written


# --- the audit ---------------------------------------------------------------------------------------------------
def record(
    store: Store, *, id_hash: str, tenant: str | None, mode: str, state: str, rows: int, detail: dict[str, Any]
) -> None:
    """One audit row: a forget ``started`` or ``done``."""
    store.insert_rows(
        AUDIT_TABLE,
        [[id_hash, tenant or "", mode, state, rows, json.dumps(detail, sort_keys=True), lease.holder()]],
        ["id_hash", "tenant_scope", "mode", "state", "rows", "detail", "holder"],
        ["String", "String", "String", "String", "UInt64", "String", "String"],
    )


def audit(store: Store, id_hash: str | None = None) -> list[dict[str, Any]]:
    """Audit rows, oldest first (every one, or those of one keyed hash)."""
    where, params = ("WHERE id_hash = {h:String}", {"h": id_hash}) if id_hash else ("", {})
    result = store.query(
        f"SELECT at, id_hash, tenant_scope, mode, state, rows, detail FROM {store.database}.{AUDIT_TABLE} "
        f"{where} ORDER BY at",
        params,
    )
    return [
        {
            "at": at,
            "id_hash": h,
            "tenant": tenant or None,
            "mode": mode,
            "state": state,
            "rows": int(rows),
            "detail": json.loads(detail) if detail else {},
        }
        for at, h, tenant, mode, state, rows, detail in result.result_rows
    ]


def pending_pseudonym(store: Store, id_hash: str, tenant: str | None) -> str | None:
    """The pseudonym of an anonymization of this id that did not finish, if one did not."""
    rows = store.query(
        f"SELECT pseudonym FROM {store.database}.{JOBS_TABLE} WHERE id_hash = {{h:String}} AND tenant_scope = "
        "{t:String} ORDER BY started_at LIMIT 1",
        {"h": id_hash, "t": tenant or ""},
    ).result_rows
    return str(rows[0][0]) if rows else None


def start_job(store: Store, id_hash: str, tenant: str | None, pseudonym: str) -> None:
    store.insert_rows(
        JOBS_TABLE, [[id_hash, tenant or "", pseudonym]], ["id_hash", "tenant_scope", "pseudonym"], ["String"] * 3
    )


def finish_job(store: Store, id_hash: str, tenant: str | None) -> None:
    """Delete the job row for good: once done, nothing links the keyed hash to the pseudonym."""
    store.command(
        f"ALTER TABLE {store.database}.{JOBS_TABLE} DELETE WHERE id_hash = {{h:String}} AND tenant_scope = {{t:String}}",
        {"h": id_hash, "t": tenant or ""},
        settings={"mutations_sync": 2},
    )
