"""``spanledger calls``: the calls explorer on the command line — newest first, filtered, keyset-paged."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

from .._present import records
from .._present.numbers import count, plural
from .._present.output import write_csv, write_json
from .._present.tables import calls_table
from . import common


def calls(args: argparse.Namespace, console: Console) -> int:
    window = common.window(args)
    asked = {
        "tenant_id": common.tenant_id(args.tenant),
        "user_id": common.user_id(args.user_id) if args.user_id is not None else None,
        "provider": args.provider,
        "model": args.model,
        "status": args.status,
        "flags": args.flag,
        "tags": common.tags(args),
        "min_cost": args.min_cost,
        "max_cost": args.max_cost,
        "trace_id": args.trace,
    }
    ledger = common.ledger(args)
    page = ledger.calls(
        start=window.start,
        end=window.end,
        cursor=args.cursor,
        direction="newer" if args.newer else "older",
        limit=args.limit,
        **asked,
    )
    total = ledger.count_calls(start=window.start, end=window.end, **asked) if args.count else None
    if args.format == "json":
        write_json(records.calls_record(page, window=window.as_dict(), total=total), sys.stdout)
    elif args.format == "csv":
        write_csv(records.CALL.records(page.calls), sys.stdout, columns=records.CALL.columns)
    elif not page.calls:
        console.print(f"No LLM calls match ({window.describe()}).")
    else:
        shown = plural(len(page.calls), "call") + (f" of {count(total)} matching" if total is not None else "")
        title = "Calls, newest first"
        console.print(
            calls_table(
                page.calls, title=title, caption=f"{window.describe()} · {shown}", who=True, width=console.width
            )
        )
        if page.next:
            console.print(f"Older calls: [bold]--cursor {page.next}[/]")
        if page.prev:
            console.print(f"Newer calls: [bold]--cursor {page.prev} --newer[/]")
    return 0
