"""Privacy commands: ``forget`` (a user, everywhere) and ``retention`` (how long what is kept)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape

from .._present.numbers import count
from .._present.output import write_json
from . import common


def forget(args: argparse.Namespace, console: Console) -> int:
    """``spanledger forget USER_ID``: delete or anonymize one user's data; never prints the id."""
    from dataclasses import asdict

    from .._privacy.forget import forget as run

    store = common.open_store(args.store, existing=True)
    report = run(
        store, args.user_id, tenant=args.tenant, mode=args.mode, spool_dir=args.spool_dir, dry_run=args.dry_run
    )
    if args.format == "json":
        write_json({**asdict(report), "seconds": round(report.seconds, 3), "dry_run": args.dry_run}, sys.stdout)
        return 0 if report.verified else 1
    who = f"the user (keyed hash {report.id_hash[:16]}…)" + (" in that tenant" if report.tenant else "")
    if report.already_forgotten:
        console.print(f"Nothing to do: {who} was forgotten before and nothing holds the id.")
        return 0
    tables = ", ".join(f"{escape(t)} {count(n)}" for t, n in sorted(report.rows.items()) if n) or "none"
    if args.dry_run:
        console.print(
            f"Would {args.mode} {who}: rows {tables}; {count(report.spool_calls)} spooled or quarantined calls."
        )
        _running(console, report.running_spools)
        return 0
    verb = "Deleted" if report.mode == "delete" else "Anonymized"
    console.print(
        f"{verb} {who}: rows {tables}; {count(report.spool_calls)} spooled or quarantined calls; rollups rebuilt "
        f"over {len(report.partitions)} month(s) ({count(report.rollup_rows)} rows) in {report.seconds:.1f} s."
    )
    _running(console, report.running_spools)
    if report.verified:
        console.print("[green]Checked: no table, spool or quarantine entry holds the id any more.[/]")
        return 0
    console.print("[red]NOT verified: something still holds the id; run the same command again.[/]")
    return 1


def _running(console: Console, running: dict[str, int]) -> None:
    for directory, calls in sorted(running.items()):
        console.print(
            f"[yellow]{count(calls)} of the user's calls wait in the spool of a running process ({escape(directory)})"
            "; they reach the store when it flushes: run forget again then.[/]"
        )


def retention(args: argparse.Namespace, console: Console) -> int:
    """``spanledger retention``: show, or set, how long calls, content and rollups are kept."""
    from .._privacy import retention as policy

    periods: dict[str, Any] = {}
    for field, value, name in (
        ("raw_days", args.calls, "--calls"),
        ("content_days", args.content, "--content"),
        ("rollup_days", args.rollups, "--rollups"),
    ):
        if value is not None:
            periods[field] = policy.parse_days(value, name)  # 0 or negative: an error before the store is opened
    store = common.open_store(args.store, existing=True)
    changed = policy.apply(store, **periods) if periods else []
    report = policy.report(store)
    if args.format == "json":
        write_json({**report, "changed": changed}, sys.stdout)
        return 0
    print_retention(console, report)
    if periods:
        console.print("Changed." if changed else "Already so: nothing changed.")
    return 0


def print_retention(console: Console, report: dict[str, Any]) -> None:
    """One line: what is kept for how long (shared with ``spanledger status``)."""
    if "error" in report:
        console.print(f"[bold]retention[/]  [yellow]{escape(str(report['error']))}[/]")
        return
    kept = ", ".join(f"{what} {how}" for what, how in report["kept"].items())
    console.print(f"[bold]retention[/]  {kept}; oldest call {report['oldest_call'] or '-'}")
