"""The maintenance lease: how a rollup rebuild asks every spanledger writer of a store to hold its inserts.

ClickHouse has no locks. A rebuild writes a row "``rebuild`` held by X until T" to ``maintenance``; every
flusher asks before it inserts (one small query per flush) and, while a lease is held, leaves its calls in
its spool — still accepting new ones — until the lease ends or expires. A lease expires on its own
(:data:`LEASE_SECONDS` after it was last renewed), so a rebuild that dies never stops the writers for long.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta

from .schema import MAINTENANCE_TABLE
from .store import Store

LEASE_SECONDS = 120
"""How long a lease lasts unless renewed (a rebuild renews it between partitions)."""
_T = "DateTime64(3, 'UTC')"


def _ts(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def holder() -> str:
    """Who holds it: host and process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def take(store: Store, name: str = "rebuild", seconds: int = LEASE_SECONDS) -> None:
    """Hold (or renew) the lease ``name`` for ``seconds``."""
    until = datetime.now(UTC) + timedelta(seconds=seconds)
    store.command(
        f"INSERT INTO {store.database}.{MAINTENANCE_TABLE} (name, holder, until) "
        f"VALUES ({{n:String}}, {{h:String}}, {{u:{_T}}})",
        {"n": name, "h": holder(), "u": _ts(until)},
    )


def release(store: Store, name: str = "rebuild") -> None:
    """End the lease now."""
    store.command(
        f"INSERT INTO {store.database}.{MAINTENANCE_TABLE} (name, holder, until) "
        f"VALUES ({{n:String}}, {{h:String}}, {{u:{_T}}})",
        {"n": name, "h": holder(), "u": _ts(datetime.now(UTC) - timedelta(seconds=1))},
    )


def held(store: Store, name: str = "rebuild") -> str | None:
    """The holder of the lease ``name`` while it lasts, else ``None``."""
    rows = store.query(
        f"SELECT argMax(holder, set_at), argMax(until, set_at) FROM {store.database}.{MAINTENANCE_TABLE} "
        "WHERE name = {n:String}",
        {"n": name},
    ).result_rows
    if not rows or rows[0][1] is None:
        return None
    who, until = rows[0]
    until = until.replace(tzinfo=UTC) if until.tzinfo is None else until
    return str(who) if until > datetime.now(UTC) else None
