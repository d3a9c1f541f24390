"""Billing commands: ``statement``, ``margins``, ``revenue import``, ``markup`` and ``reprice``."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.markup import escape

from .._billing import records
from .._billing.billing import Billing
from .._billing.model import RepriceReport
from .._billing.periods import window
from .._billing.revenue import RevenueFileError
from .._billing.rounding import RULE, cents_text
from .._billing.tables import margins_table, percent, reprice_table, statement_table
from .._errors import ConfigError
from .._present.numbers import count, money
from .._present.output import write_csv, write_json
from .._present.tables import TimeRange
from . import common


def statement(args: argparse.Namespace, console: Console) -> int:
    """A tenant's or a user's statement for a period."""
    if args.tenant is None and args.user is None:
        raise ConfigError("statement: give --tenant ID or --user ID")
    user = common.user_id(args.user) if args.user is not None else None
    lo, hi = window(period=args.period, start=args.start, end=args.end, default_month=True)
    st = common.local_ledger(args, held="ask its API instead: GET /api/v1/statement").statement(
        args.tenant, user_id=user, start=lo, end=hi
    )
    if args.format == "json":
        write_json(records.record(st), sys.stdout)
    elif args.format == "csv":
        write_csv(records.statement_rows(st), sys.stdout, columns=records.LINE_COLUMNS)
    else:
        caption = TimeRange(st.start, st.end).describe()
        if not st.requests:
            console.print(f"No LLM calls for {escape(st.customer)} ({caption}).")
            return 0
        console.print(statement_table(st, caption=caption))
        console.print(
            f"Amount due: [green bold]{cents_text(st.amount)}[/] (exact price {st.price.normalize():f} USD, "
            f"cost {st.cost.normalize():f} USD)"
        )
        if st.unpriced_requests:
            console.print(
                f"[yellow]{count(st.unpriced_requests)} unpriced calls ({count(st.unpriced_tokens)} tokens)[/] are "
                "on lines of their own and in no amount: give their model a price, then `spanledger reprice`."
            )
        console.print(f"[dim]{RULE}[/]")
    return 0


def margins(args: argparse.Namespace, console: Console) -> int:
    """Revenue against cost per tenant or user, worst first."""
    lo, hi = window(period=args.period, start=args.start, end=args.end)
    rows = common.local_ledger(args, held="ask its API instead: GET /api/v1/margins").margins(
        lo, hi, by=args.by, tenant_id=args.tenant
    )
    if args.format == "json":
        write_json(records.margins_record(rows, by=args.by, start=lo, end=hi), sys.stdout)
    elif args.format == "csv":
        write_csv([records.record(r) for r in rows], sys.stdout, columns=records.MARGIN_COLUMNS)
    elif not rows:
        console.print(f"No revenue and no LLM calls ({TimeRange(lo, hi).describe()}).")
    else:
        negative = sum(1 for r in rows if r.negative)
        title = f"Margins per {args.by}, worst first"
        caption = f"{TimeRange(lo, hi).describe()} · {count(len(rows))} customers, {count(negative)} negative"
        console.print(margins_table(rows, title=title, caption=caption))
        if negative:
            console.print(f"[red]{count(negative)} customers cost more than they paid[/] (in red).")
    return 0


def revenue(args: argparse.Namespace, console: Console) -> int:
    """``revenue import FILE``: all of it or nothing; one error line per bad line."""
    billing = Billing(common.open_store(args.store, existing=True))
    try:
        done = billing.import_revenue(args.file, dry_run=args.dry_run)
    except RevenueFileError as exc:
        sys.stdout.flush()
        for error in exc.errors:
            print(f"spanledger: error: {' '.join(error.split())}", file=sys.stderr)
        return 2
    if args.format == "json":
        write_json(records.record(done), sys.stdout)
        return 0
    verb = "would import" if done.dry_run else "imported"
    console.print(
        f"{escape(done.file)} ({done.shape}): {count(done.lines)} lines, {money(done.amount)} — {verb} "
        f"{count(done.imported)}, {count(done.already)} already imported."
    )
    return 0


def markup(args: argparse.Namespace, console: Console) -> int:
    """``markup set PERCENT``, ``markup unset``, ``markup list`` (per --tenant, --user, --plan or the default)."""
    billing = Billing(common.open_store(args.store, existing=True))
    target = {"tenant": args.tenant, "user": args.user, "plan": args.plan}
    if args.action == "set":
        if args.percent is None:
            raise ConfigError("markup set: give the percentage, e.g. `spanledger markup set 20 --tenant acme`")
        done = billing.set_markup(args.percent, note=args.note, **target)
        console.print(f"Markup of {escape(done.label)}: {percent(done.percent)}.")
        return 0
    if args.percent is not None:
        raise ConfigError(f"markup {args.action} takes no percentage")
    if args.action == "unset":
        removed = billing.remove_markup(**target)
        console.print("Removed." if removed else "No such markup was set.")
        return 0
    items = billing.markups()
    if args.format == "json":
        write_json({"markups": [records.record(m) for m in items]}, sys.stdout)
    elif not items:
        console.print("No markups: statements charge cost (0 %).")
    else:
        for m in items:
            note = f"  [dim]{escape(m.note)}[/]" if m.note else ""
            console.print(f"{escape(m.label):<32} {percent(m.percent):>10}{note}")
    return 0


def reprice(args: argparse.Namespace, console: Console) -> int:
    """Price a window's calls again; before/after per tenant and user."""
    billing = Billing(common.open_store(args.store, existing=True))
    report = billing.reprice(
        start=args.start,
        end=args.end,
        provider=args.provider,
        model=args.model,
        price_file=args.price_file,
        dry_run=args.dry_run,
    )
    if args.format == "json":
        write_json({**records.record(report), "seconds": round(report.seconds, 3)}, sys.stdout)
    else:
        _print_reprice(console, report, top=args.top)
    return 0 if report.verified is not False else 1


def _print_reprice(console: Console, report: RepriceReport, *, top: int) -> None:
    verb = "would change" if report.dry_run else "changed"
    window_text = TimeRange(report.start, report.end).describe()
    console.print(
        f"{count(report.calls)} calls looked at ({window_text}); {verb} {count(report.changed)} "
        f"({count(report.newly_priced)} newly priced); {count(report.kept)} without a price now, kept as they were."
    )
    sign = "+" if report.difference > 0 else ""
    console.print(
        f"Total: {money(report.before)} → {money(report.after)} ({sign}{money(report.difference)}; exact "
        f"{report.before.normalize():f} → {report.after.normalize():f} USD)"
    )
    if report.tenants:
        console.print(reprice_table(report.tenants, title="Per tenant", caption="", users=False))
        shown = report.users[:top]
        more = len(report.users) - len(shown)
        caption = f"largest differences first; {count(more)} more with --format json" if more else ""
        console.print(reprice_table(shown, title="Per user", caption=caption, users=True))
    if report.dry_run:
        console.print("Dry run: nothing written.")
    elif report.changed:
        state = "[green]verified against llm_calls[/]" if report.verified else "[red]NOT verified[/]"
        console.print(f"Rollups of {len(report.days)} day(s) rebuilt: {state}.")
