"""Customer profiles and tool use: ``customers import | list | show`` and ``tools``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from .._customers import store as profiles
from .._customers.profiles import format_of, read_text
from .._errors import ConfigError, ImportRejected
from .._present import records
from .._present.customers import customers_table, profile_lines, tools_table
from .._present.output import write_csv, write_json
from . import common


def customers(args: argparse.Namespace, console: Console) -> int:
    """``customers import FILE``, ``customers list`` and ``customers show [ID]``."""
    if args.action == "import":
        return _import(args, console)
    if args.action == "list":
        return _list(args, console)
    return _show(args, console)


def _import(args: argparse.Namespace, console: Console) -> int:
    if not args.target:
        raise ConfigError("customers import needs a file: spanledger customers import people.csv")
    path = Path(args.target)
    fmt = args.file_format or format_of(path.name)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save the file as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        changes = read_text(text, format=fmt, source=str(path))
    except ImportRejected as exc:
        for error in exc.errors:
            print(f"{path}: {error}", file=sys.stderr)
        raise ConfigError(f"{path}: {len(exc.errors)} bad row(s); nothing was imported") from None
    if args.dry_run:
        console.print(f"{path}: {len(changes)} good row(s); nothing written (--dry-run)")
        return 0
    result = profiles.upsert(common.open_store(args.store), changes)
    if args.format == "json":
        write_json(_result(result, path), sys.stdout)
    else:
        console.print(
            f"{path}: {result.rows} row(s) · {result.created} created · {result.updated} updated · "
            f"{result.unchanged} unchanged"
        )
    return 0


def _result(result: profiles.UpsertResult, path: Path) -> dict[str, object]:
    return {
        "file": str(path),
        "rows": result.rows,
        "created": result.created,
        "updated": result.updated,
        "unchanged": result.unchanged,
    }


def _list(args: argparse.Namespace, console: Console) -> int:
    if args.target:
        raise ConfigError("customers list takes no id; use --search TEXT or customers show ID")
    store = common.open_store(args.store, existing=True)
    page = profiles.listing(
        store, tenant_id=args.tenant, search=args.search, kind=args.kind, page=args.page, limit=args.limit
    )
    if args.format == "json":
        write_json(records.page_record(page, records.CUSTOMER), sys.stdout)
    elif args.format == "csv":
        write_csv(records.CUSTOMER.records(page.rows), sys.stdout, columns=records.CUSTOMER.columns)
    elif not page.total:
        console.print("No customer profiles match." if args.search or args.tenant else "No customer profiles yet.")
    else:
        console.print(customers_table(page, width=console.width))
    return 0


def _show(args: argparse.Namespace, console: Console) -> int:
    user_id = args.target or ""
    if not user_id and args.tenant is None:
        raise ConfigError("customers show needs a user id, or --tenant ID for a tenant's own profile")
    found = profiles.get(common.open_store(args.store, existing=True), user_id, tenant_id=args.tenant or "")
    if args.format == "json":
        write_json(records.CUSTOMER.record(found) if found else None, sys.stdout)
        return 0 if found else 1
    if found is None:
        who = f"user {user_id!r}" if user_id else f"tenant {args.tenant!r}"
        where = f" in tenant {args.tenant!r}" if user_id and args.tenant else " (with no tenant)" if user_id else ""
        console.print(f"No profile for {escape(who)}{escape(where)}.")
        return 1
    for line in profile_lines(found):
        console.print(line)
    return 0


def tools(args: argparse.Namespace, console: Console) -> int:
    """``tools``: executions per tool (``--per-user``: per tenant, user and tool) over a window."""
    window, tags = common.window(args), common.tags(args)
    user_id = common.user_id(args.user_id) if args.user_id is not None else None
    page = common.local_ledger(args, held="ask its API instead: GET /api/v1/tools").tools(
        start=window.start,
        end=window.end,
        tenant_id=args.tenant,
        user_id=user_id,
        tags=tags,
        per_user=args.per_user,
        page=args.page,
        limit=args.limit,
    )
    if args.format == "json":
        write_json(records.page_record(page, records.TOOL, window=window.as_dict(), per_user=args.per_user), sys.stdout)
    elif args.format == "csv":
        write_csv(records.TOOL.records(page.rows), sys.stdout, columns=records.TOOL.columns)
    elif not page.total:
        console.print(f"No tool executions match ({window.describe()}).")
    else:
        caption = f"{window.describe()} · page {page.page} of {page.pages} · {page.total:,} rows"
        title = "Tool use per user" if args.per_user else "Tool use"
        console.print(tools_table(page.rows, title=title, caption=caption, per_user=args.per_user, width=console.width))
    return 0
