"""Running it: ``schema``, ``demo``, ``status``, ``quarantine``, ``rebuild`` and ``serve``."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.markup import escape

from .._config import DEFAULT_STORE, env_str
from .._errors import ConfigError, StoreError
from .._present.numbers import count, iso
from .._present.output import write_json
from . import common


def schema(args: argparse.Namespace, console: Console) -> int:
    from .._store.dsn import parse as _parse

    dsn = env_str("SPANLEDGER_STORE", args.store, DEFAULT_STORE)
    database = _parse(dsn)[2]
    if args.cluster:
        from .._store.cluster import cluster_ddl

        ddl: str = cluster_ddl(database, args.cluster)
    else:
        from .._store.schema import schema_ddl

        ddl = schema_ddl(database)
    sys.stdout.write(ddl if ddl.endswith("\n") else ddl + "\n")
    return 0


def demo(args: argparse.Namespace, console: Console) -> int:
    from .._demo.demo import month_end, preload, run_demo
    from .._query.timebound import parse_bound

    until = month_end(parse_bound(args.until))  # a bad or future date: one line, before the store is opened
    preload()  # the openai client's imports, while the store opens
    dsn = env_str("SPANLEDGER_STORE", args.store, DEFAULT_STORE)
    store = common.open_store(dsn)
    show = args.store is not None
    return run_demo(store=store, calls=args.calls, seed=args.seed, end=until, console=console, show_store=show)


def status(args: argparse.Namespace, console: Console) -> int:
    import json
    from pathlib import Path

    from .._ingest.paths import default_spool_dir
    from .._ingest.status import spool_status, store_status

    dsn = env_str("SPANLEDGER_STORE", args.store, DEFAULT_STORE)
    spool_root = env_str("SPANLEDGER_SPOOL_DIR", args.spool_dir, "")
    report: dict[str, object] = {"store": dsn.split("@")[-1] if "@" in dsn else dsn}
    report["spool"] = spool_status(Path(spool_root) if spool_root else default_spool_dir(dsn))
    try:
        held = "its /healthz and /api/v1/status (admin) show the store's state"
        opened = common.open_store(dsn, existing=True, held=held)
        report["store_contents"] = store_status(opened)
        from .._privacy.retention import report as retention_report

        report["retention"] = retention_report(opened)
    except (StoreError, ConfigError) as exc:  # held by an exporter, or not made yet: what status is for
        report["store_contents"] = {"error": " ".join(str(exc).split())}
        report["retention"] = {"error": "unknown: the store cannot be read"}
    if args.format == "json":
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return 0
    spool = report["spool"]
    assert isinstance(spool, dict)
    console.print(f"[bold]store[/]  {report['store']}")
    contents = report["store_contents"]
    assert isinstance(contents, dict)
    if "error" in contents:
        console.print(f"  [yellow]{contents['error']}[/]")
    else:
        console.print(
            f"  {count(contents['calls'])} calls, ${contents['cost_usd']} priced, "
            f"{count(contents['unpriced_calls'])} unpriced, last insert {contents['last_insert'] or '-'}"
        )
    from .privacy import print_retention

    retention = report["retention"]
    assert isinstance(retention, dict)
    print_retention(console, retention)
    console.print(f"[bold]spool[/]  {spool['spool_dir']}  ({count(spool['pending_bytes'])} bytes pending)")
    for owner in spool["owners"]:
        state = "running" if owner["alive"] else "gone (replayed by the next exporter)"
        counters = ", ".join(f"{k}={v}" for k, v in sorted(owner["counters"].items())) or "no counters yet"
        console.print(
            f"  pid {owner['pid']} {state}: {owner['segments']} segments, {count(owner['bytes'])} bytes, "
            f"store {'ok' if owner['store_healthy'] else 'failing' if owner['store_healthy'] is False else '?'}"
        )
        console.print(f"    {counters}")
    if not spool["owners"]:
        console.print("  no exporter has written here")
    _print_quarantine(console, spool["quarantine"])
    return 0


def _print_quarantine(console: Console, q: dict[str, Any]) -> None:
    if not q["calls"]:
        console.print(f"[bold]quarantine[/]  {q['dir']}  (empty)")
        return
    reasons = ", ".join(f"{reason} {count(n)}" for reason, n in sorted(q["by_reason"].items()))
    console.print(
        f"[bold]quarantine[/]  {q['dir']}\n  [yellow]{count(q['calls'])} calls set aside[/] in {count(q['entries'])} "
        f"entries ({reasons}); oldest {q['oldest_age_s']:,.0f} s ago. They are not in any total: look at them "
        "with `spanledger quarantine list`, fix the cause (a price rule, say), then `spanledger quarantine replay`."
    )


def quarantine(args: argparse.Namespace, console: Console) -> int:
    """``quarantine list`` and ``quarantine replay``: the calls set aside, and pricing them again."""
    from pathlib import Path

    from .._ingest.paths import default_spool_dir
    from .._ingest.quarantine import Quarantine

    dsn = env_str("SPANLEDGER_STORE", args.store, DEFAULT_STORE)
    spool_root = env_str("SPANLEDGER_SPOOL_DIR", args.spool_dir, "")
    root = Path(spool_root) if spool_root else default_spool_dir(dsn)
    if args.action == "list":
        entries = Quarantine(root).entries()
        if args.format == "json":
            rows = [
                {
                    "file": str(e.path),
                    "reason": e.reason,
                    "error": e.error,
                    "calls": e.calls,
                    "quarantined_at": iso(datetime.fromtimestamp(e.quarantined_at, UTC)),
                    "source": e.source,
                }
                for e in entries
            ]
            write_json({"quarantine": str(root / "quarantine"), "entries": rows}, sys.stdout)
        elif not entries:
            console.print(f"The quarantine {escape(str(root / 'quarantine'))} is empty.")
        else:
            for e in entries:
                stamp = datetime.fromtimestamp(e.quarantined_at, UTC).strftime("%Y-%m-%d %H:%M:%S")
                console.print(
                    f"{stamp} UTC  {count(e.calls)} calls  [yellow]{escape(e.reason)}[/]  {escape(e.path.name)}"
                )
                console.print(f"    {escape(e.error)}")
        return 0
    from .._ingest.pipeline import Pipeline

    held = "replay through its admin API instead (POST /api/v1/quarantine/replay with an admin token), or stop it"
    store = common.open_store(dsn, existing=True, held=held)
    pipeline = Pipeline(store, spool_dir=root, price_file=args.price_file)
    try:
        report = pipeline.replay_quarantine(dry_run=args.dry_run)
        flushed = args.dry_run or pipeline.force_flush(120_000)
    finally:
        pipeline.shutdown()
    if args.format == "json":
        write_json({**report, "dry_run": args.dry_run, "flushed": flushed}, sys.stdout)
    else:
        verb = "would replay" if args.dry_run else "replayed"
        console.print(
            f"{count(report['entries'])} entries, {count(report['calls'])} calls: {verb} {count(report['replayed'])}, "
            f"{count(report['kept'])} still past a bound (kept in the quarantine)."
        )
        if not flushed:
            console.print("[yellow]The store did not take them yet: they wait in the spool and are retried.[/]")
    return 0


def rebuild(args: argparse.Namespace, console: Console) -> int:
    """Recompute the rollups from ``llm_calls`` (see ``spanledger._store.rebuild``)."""
    from datetime import date

    from .._store.rebuild import rebuild as run

    def day(text: str | None, name: str) -> date | None:
        if text is None:
            return None
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise ConfigError(f"bad {name} day {text!r}: use YYYY-MM-DD") from None

    start, end = day(args.start, "--from"), day(args.end, "--to")
    if start and end and end <= start:
        raise ConfigError("--to must be after --from")
    store = common.open_store(args.store, existing=True, held="stop it, rebuild, then start it again")
    report = run(store, start=start, end=end, tenants=args.tenants, users=args.users)
    if args.format == "json":
        write_json({**dataclasses.asdict(report), "seconds": round(report.seconds, 3)}, sys.stdout)
    elif not report.partitions:
        console.print("Nothing to rebuild: no calls in those days.")
    else:
        state = "[green]every day checked against llm_calls[/]" if report.verified else "[red]NOT verified[/]"
        console.print(
            f"Rebuilt {len(report.tables)} rollups over {len(report.partitions)} month(s) "
            f"({', '.join(report.partitions)}): {count(report.rows)} rows in {report.seconds:.1f} s; {state}."
        )
        for problem in report.mismatches:
            console.print(f"  [red]{escape(problem)}[/]")
    return 0 if report.verified else 1


def serve(args: argparse.Namespace, console: Console) -> int:
    try:
        from .._server import serve
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"`spanledger serve` needs the serve extra: pip install 'spanledger[serve]' ({exc})"
        ) from None
    return serve(
        store=common.open_store(args.store, held="it already serves this store"),
        host=args.host,
        port=args.port,
        no_auth=args.no_auth,
        token_file=args.token_file,
        max_request_bytes=args.max_request_bytes,
    )
