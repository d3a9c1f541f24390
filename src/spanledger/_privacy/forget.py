"""Forgetting a user: every row, rollup, spooled or quarantined call that names them — deleted, or given a random
pseudonym so that billing totals stay whole while the person is gone.

In order, holding the maintenance lease (every spanledger writer of the store holds its inserts meanwhile;
their spools keep accepting calls):

1. the tables and spools are searched for the id — in clear and as its keyed hash, so a pseudonymized ledger is
   searched with the raw id. Nothing found: a forget recorded before makes this run a no-op; otherwise it is an
   unknown id, an error, and nothing is changed. An ``audit`` row says the forget started (never the id: a
   keyed hash of it);
2. spools and quarantine are rewritten without the user's calls (:mod:`.spool`);
3. every table with a ``user_id`` column other than the rollups loses the user's rows (a synchronous
   mutation) or has them rewritten with the pseudonym and no content (partition swaps) — tables other rooms
   add are found through ``system.columns``;
4. the rollups are rebuilt from ``llm_calls`` for the user's days and tenants (mutations never reach them and
   ``uniq`` states cannot be decremented), so tenant totals drop by exactly the user's spend — or, for an
   anonymization, stay the same to the cent;
5. every table is searched again; what a rebuild could not reach (rollup days whose raw calls the retention
   already dropped) is deleted or rewritten directly; a second audit row says it is done.

A run cut short is finished by running it again: each step is idempotent, and an anonymization keeps its
pseudonym in ``privacy_jobs`` until it is done, then deletes that row.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from .._errors import ConfigError
from .._ingest import shared
from .._ingest.paths import default_spool_dir
from .._ingest.pipeline import Pipeline
from .._model.rows import UNATTRIBUTED_LABEL
from .._store import lease
from .._store.rebuild import GRACE_SECONDS, rebuild
from .._store.schema import ROLLUP_TABLES
from .._store.store import Store
from . import store as sql
from .pseudonym import Pseudonymizer, from_env, random_pseudonym
from .spool import Edit, forget_in_spools

_log = logging.getLogger(__name__)

MODES: Final = ("delete", "anonymize")


class UnknownIdError(ConfigError):
    """No table, spool or quarantine holds the id, and it was never forgotten: nothing was changed."""


@dataclass(slots=True)
class ForgetReport:
    """What a forget did."""

    mode: str
    id_hash: str
    """The keyed hash its audit rows carry (never the id)."""
    tenant: str | None = None
    rows: dict[str, int] = field(default_factory=dict)
    """Rows of each table deleted or rewritten (rollups: the user's rows before their rebuild)."""
    spool_calls: int = 0
    """Calls removed from (or rewritten in) spools and the quarantine."""
    running_spools: dict[str, int] = field(default_factory=dict)
    """Spools of other running processes that still hold the user's calls (they insert them later)."""
    rollup_rows: int = 0
    """Rows the rollup rebuild wrote (the swapped partitions, copied and recomputed)."""
    rewritten_rows: int = 0
    """Rows written by an anonymization's partition swaps."""
    partitions: list[str] = field(default_factory=list)
    already_forgotten: bool = False
    """Nothing was left to forget and a forget was recorded before: this run changed nothing."""
    verified: bool = True
    """Afterwards no table, spool or quarantine entry (of this process or a stopped one) holds the id, and every
    rebuilt rollup equals ``llm_calls``."""
    problems: list[str] = field(default_factory=list)
    """What is wrong when it is not verified."""
    seconds: float = 0.0

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def _pseudonymizer(key: Pseudonymizer | str | bytes | None) -> Pseudonymizer:
    if isinstance(key, Pseudonymizer):
        return key
    if key is not None:
        return Pseudonymizer(key)
    found = from_env(required=True)
    assert found is not None
    return found


def forget(
    store: Store,
    user_id: str,
    *,
    tenant: str | None = None,
    mode: str = "delete",
    key: Pseudonymizer | str | bytes | None = None,
    spool_dir: str | Path | None = None,
    pipelines: Sequence[Pipeline] | None = None,
    dry_run: bool = False,
    grace_seconds: float | None = None,
    wait_seconds: float | None = None,
) -> ForgetReport:
    """Forget ``user_id`` (in ``tenant`` only, when given) everywhere; see the module docs.

    Args:
        store: The ledger.
        user_id: The id as the application knows it (or its pseudonym).
        tenant: Only the user's data in this tenant.
        mode: ``delete`` (default) or ``anonymize``.
        key: The id key (default ``SPANLEDGER_ID_KEY``): it hashes the id for the look-up in a pseudonymized
            ledger and for the audit record.
        spool_dir: The spool root to search (default ``SPANLEDGER_SPOOL_DIR``, then beside the store); the spools
            of this process's pipelines for the store are searched too.
        pipelines: This process's pipelines writing to the store (default: every open one for its DSN).
        dry_run: Only count what would be forgotten (``rows``, ``spool_calls``); change nothing.
        grace_seconds: How long to wait after taking the lease for other writers' inserts under way to finish
            (default 3 s on a server; 0 for an embedded store, which no other process can write).
        wait_seconds: How long to wait, first, for other running processes to insert the user's spooled calls
            (default 10 s on a server, 0 for an embedded store).

    Raises:
        ConfigError: A bad mode or id, no key, a table that cannot be rewritten; :class:`UnknownIdError` when
            nothing holds the id and it was never forgotten. Nothing is changed then.
    """
    started = time.monotonic()
    if mode not in MODES:
        raise ConfigError(f"bad forget mode {mode!r}: use delete or anonymize")
    if not user_id.strip() or user_id.strip() == UNATTRIBUTED_LABEL:
        raise ConfigError("forget needs a user id (calls with no user cannot be forgotten as a person)")
    hasher = _pseudonymizer(key)
    ids = sorted({user_id, hasher(user_id)})
    scope = hasher.tenant(tenant) if tenant else None
    report = ForgetReport(mode=mode, id_hash=hasher.audit_hash(user_id), tenant=scope)
    targets = sql.targets(store)
    pipelines = shared.for_store(store.dsn) if pipelines is None else [p for p in pipelines if not p._closed]
    roots = _roots(store, spool_dir, pipelines)
    edit = Edit(frozenset(ids), scope)

    found = {t.table: sql.count_rows(store, t, ids, scope) for t in targets}
    spooled = forget_in_spools(roots, edit, pipelines=pipelines, write=False)
    if not any(found.values()) and not spooled.calls and not spooled.running:
        if any(a["state"] == "done" and a["tenant"] == scope for a in sql.audit(store, report.id_hash)):
            report.already_forgotten = True
            report.seconds = time.monotonic() - started
            return report
        raise UnknownIdError(
            "no call or row of this user id is in the ledger, its spools or its quarantine, and it was never "
            "forgotten: nothing was changed (check the id; a pseudonymized ledger needs the same SPANLEDGER_ID_KEY)"
        )
    if dry_run:
        report.rows = {table: n for table, n in found.items() if n}
        report.spool_calls, report.running_spools = spooled.calls, spooled.running
        report.seconds = time.monotonic() - started
        return report
    pseudonym = None
    if mode == "anonymize":
        pseudonym = sql.pending_pseudonym(store, report.id_hash, scope) or random_pseudonym()
        edit = Edit(frozenset(ids), scope, pseudonym)
    sql.record(
        store, id_hash=report.id_hash, tenant=scope, mode=mode, state="started", rows=sum(found.values()), detail={}
    )
    if pseudonym is not None and sql.pending_pseudonym(store, report.id_hash, scope) is None:
        sql.start_job(store, report.id_hash, scope, pseudonym)
    _log.info("forgetting a user (keyed hash %s…, %s)", report.id_hash[:12], mode)
    server = store.kind == "http"  # an embedded store has one writer: this process
    _wait_for_running_spools(roots, edit, pipelines, wait_seconds if wait_seconds is not None else 10.0 * server)

    nested = lease.held(store) == lease.holder()
    lease.take(store)
    try:
        time.sleep(grace_seconds if grace_seconds is not None else GRACE_SECONDS * server)
        _hold_inserts(pipelines)
        spooled = forget_in_spools(roots, edit, pipelines=pipelines)
        report.spool_calls = spooled.calls
        for target in targets:
            if found[target.table] and target.table not in ROLLUP_TABLES:
                _forget_rows(store, target, ids, scope, pseudonym, report)
        rebuilt = rebuild(
            store,
            users=[*ids, *([pseudonym] if pseudonym else [])],
            tenants=[scope] if scope is not None else None,
            grace_seconds=0,
        )
        report.rollup_rows, report.partitions = rebuilt.rows, rebuilt.partitions
        for target in targets:  # what the rebuild could not reach: rollup days the retention dropped from llm_calls
            if target.table in ROLLUP_TABLES:
                report.rows[target.table] = found[target.table]
                if sql.count_rows(store, target, ids, scope):
                    _forget_rows(store, target, ids, scope, pseudonym, report)
        left = {t.table: n for t in targets if (n := sql.count_rows(store, t, ids, scope))}
        after = forget_in_spools(roots, edit, pipelines=pipelines, write=False)
        report.running_spools = after.running
        report.problems = [f"{table}: {n} rows left" for table, n in sorted(left.items())] + rebuilt.mismatches
        if after.calls:
            report.problems.append(f"{after.calls} calls left in spools or the quarantine")
        report.verified = not report.problems
        if report.problems:
            _log.error("forget is not verified: %s", "; ".join(report.problems))
        if pseudonym is not None:
            sql.finish_job(store, report.id_hash, scope)
        report.seconds = time.monotonic() - started
        sql.record(
            store,
            id_hash=report.id_hash,
            tenant=scope,
            mode=mode,
            state="done",
            rows=report.total_rows,
            detail=_detail(report),
        )
    finally:
        if not nested:
            lease.release(store)
    return report


def _roots(store: Store, spool_dir: str | Path | None, pipelines: Sequence[Pipeline]) -> list[Path]:
    explicit = spool_dir if spool_dir is not None else os.environ.get("SPANLEDGER_SPOOL_DIR") or None
    roots = [Path(explicit) if explicit else default_spool_dir(store.dsn)]
    roots += [p.spool_root for p in pipelines]
    unique: dict[str, Path] = {}
    for root in roots:
        unique.setdefault(os.path.realpath(root), root)
    return list(unique.values())


def _forget_rows(
    store: Store,
    target: sql.Target,
    ids: Sequence[str],
    tenant: str | None,
    pseudonym: str | None,
    report: ForgetReport,
) -> None:
    if target.table not in ROLLUP_TABLES:
        report.rows[target.table] = sql.count_rows(store, target, ids, tenant)
    if pseudonym is None:
        sql.delete_rows(store, target, ids, tenant)
    else:
        report.rewritten_rows += sql.anonymize_rows(store, target, ids, tenant, pseudonym)


def _wait_for_running_spools(roots: Sequence[Path], edit: Edit, pipelines: Sequence[Pipeline], seconds: float) -> None:
    """Give other running processes time to insert the user's spooled calls, so that the forget finds them in the
    store (it cannot rewrite their spools: their calls are in their memory too)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not forget_in_spools(roots, edit, pipelines=pipelines, write=False).running:
            return
        time.sleep(0.25)


def _hold_inserts(pipelines: Sequence[Pipeline], timeout: float = 10.0) -> None:
    """Let this process's flushers see the lease: two flush cycles each, so one began after the lease was taken."""
    for pipeline in pipelines:
        for _ in range(2):
            with pipeline.flusher.idle:
                pipeline.flusher.wake()
                pipeline.flusher.idle.wait(timeout)


def _detail(report: ForgetReport) -> dict[str, Any]:
    return {
        "tables": {k: v for k, v in report.rows.items() if v},
        "spool_calls": report.spool_calls,
        "running_spools": sum(report.running_spools.values()),
        "rollup_rows": report.rollup_rows,
        "rewritten_rows": report.rewritten_rows,
        "verified": report.verified,
        "seconds": round(report.seconds, 3),
    }
