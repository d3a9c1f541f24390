"""``spanledger budgets set | list | rm | report`` and ``spanledger alerts list | test | run``.

The arguments are declared here with argparse alone (:func:`add_commands`, called by ``parser.py``); each handler
imports what it needs when it runs, so ``--help`` stays cheap.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

PERIODS = ("daily", "weekly", "monthly", "yearly", "custom", "lifetime")
FORMATS = ("table", "json", "csv")


def add_commands(sub: Any, store: argparse.ArgumentParser, parser_class: type[argparse.ArgumentParser]) -> None:
    """Declare ``budgets`` and ``alerts`` on the main parser's sub-commands."""
    subject = parser_class(add_help=False)
    subject.add_argument("--user", dest="user_id", metavar="ID", help="a user (with --tenant: within that tenant)")
    subject.add_argument("--tenant", dest="tenant_id", metavar="ID", help="a tenant")
    subject.add_argument("--default", action="store_true", help="with --tenant: every user of it without a budget")
    subject.add_argument("--tag", metavar="K=V", help="every user whose calls carry this tag (plan=free)")
    output = parser_class(add_help=False)
    output.add_argument("--format", choices=FORMATS, default="table", help="table (default), json or csv")

    budgets = sub.add_parser(
        "budgets",
        help="budgets per user, tenant or plan: set, list, remove, and who is near or over",
        description="Budgets live in the store, shared by every process that writes to it. A subject is a user "
        "(--user), a tenant (--tenant), a user within a tenant (both), every user of a tenant without a budget of "
        "their own (--tenant ID --default) or every user whose calls carry a tag (--tag plan=free). Hard budgets "
        "are enforced by BudgetGuard in the app; soft ones only alert.",
    )
    actions = budgets.add_subparsers(dest="action", metavar="ACTION", required=True)
    put = actions.add_parser("set", parents=[store, subject], help="set (or replace) a budget")
    put.add_argument("--period", choices=PERIODS, required=True, help="the period the limit is for")
    put.add_argument("--limit", required=True, metavar="USD", help="the budget in USD, e.g. 25 or 0.50")
    put.add_argument("--timezone", metavar="TZ", help="IANA time zone its days start in (default UTC)")
    put.add_argument("--from", dest="starts_at", metavar="WHEN", help="a custom period's start (ISO date/time, UTC)")
    put.add_argument("--to", dest="ends_at", metavar="WHEN", help="a custom period's end, exclusive")
    put.add_argument("--soft", action="store_true", help="alert only; the guard does not refuse calls")
    put.add_argument("--alert-at", metavar="PCTS", help="alert thresholds in percent (default 50,80,100; '' for none)")
    put.add_argument("--format", choices=("table", "json"), default="table", help="table (default) or json")
    put.set_defaults(handler="budgets.set_budget")
    listing = actions.add_parser("list", parents=[store, output], help="the budgets in force")
    listing.add_argument("--tenant", dest="tenant_id", metavar="ID", help="only budgets within this tenant")
    listing.set_defaults(handler="budgets.list_budgets")
    remove = actions.add_parser("rm", parents=[store, subject], help="remove a budget (by id, or a subject's)")
    remove.add_argument("budget_id", nargs="?", metavar="ID", help="the budget's id (see `budgets list`)")
    remove.add_argument("--period", choices=PERIODS, help="only the subject's budget for this period")
    remove.set_defaults(handler="budgets.remove_budget")
    report = actions.add_parser(
        "report", parents=[store, output], help="every budgeted subject: spend this period, limit, projection"
    )
    report.add_argument("--tenant", dest="tenant_id", metavar="ID", help="only subjects within this tenant")
    report.add_argument("--over", action="store_true", help="only subjects at or past their limit")
    report.set_defaults(handler="budgets.report")

    alerts = sub.add_parser(
        "alerts",
        help="alerts fired (budget thresholds, absolute and spike rules) and the webhook",
        description="Alerts fire once per subject, rule and period, to the log and to the webhook "
        "SPANLEDGER_ALERT_WEBHOOK_URL (signed with SPANLEDGER_ALERT_WEBHOOK_SECRET). Rules: "
        "absolute:user|tenant:daily|weekly|monthly:USD, spike:user|tenant:hour|day:FACTOR:FLOOR[:DAYS] "
        "(--rule or SPANLEDGER_ALERT_RULES, separated by ';').",
    )
    alert_actions = alerts.add_subparsers(dest="action", metavar="ACTION", required=True)
    fired = alert_actions.add_parser("list", parents=[store, output], help="the most recent alerts and deliveries")
    fired.add_argument("--tenant", dest="tenant_id", metavar="ID", help="only this tenant's alerts")
    fired.add_argument("--limit", type=int, default=50, help="how many (default 50)")
    fired.set_defaults(handler="budgets.list_alerts")
    rules = parser_class(add_help=False)
    rules.add_argument("--rule", action="append", metavar="RULE", help="an alert rule (repeatable)")
    rules.add_argument("--webhook", metavar="URL", help="the webhook (default $SPANLEDGER_ALERT_WEBHOOK_URL)")
    test = alert_actions.add_parser(
        "test",
        parents=[store, rules],
        help="what would fire now (nothing recorded), and a signed test alert to the webhook",
    )
    test.set_defaults(handler="budgets.test_alerts")
    run = alert_actions.add_parser(
        "run", parents=[store, rules], help="fire what is due now and deliver (for cron, without `serve`)"
    )
    run.set_defaults(handler="budgets.run_alerts")


# --- handlers ---------------------------------------------------------------------------------------------


def _budgets(args: argparse.Namespace, *, existing: bool) -> Any:
    from .._budgets.budgets import Budgets
    from .common import open_store

    return Budgets(open_store(args.store, existing=existing))


def set_budget(args: argparse.Namespace, console: Console) -> int:
    from .._budgets.model import make_budget
    from .._budgets.store import save
    from .._errors import ConfigError
    from .._query.timebound import parse_bound
    from .common import open_store

    if args.tag is not None and "=" not in args.tag:
        raise ConfigError(f"bad --tag {args.tag!r}: expected key=value, e.g. --tag plan=free")
    budget = make_budget(  # checked before the store is opened: bad input changes nothing
        limit=args.limit,
        period=args.period,
        user_id=args.user_id,
        tenant_id=args.tenant_id,
        tag=args.tag,
        default=args.default,
        hard=not args.soft,
        timezone=args.timezone,
        starts_at=parse_bound(args.starts_at),
        ends_at=parse_bound(args.ends_at),
        alert_at=args.alert_at,
    )
    budget = save(open_store(args.store), budget)
    if args.format == "json":
        from .._budgets.records import BUDGET
        from .._present.output import write_json

        write_json(BUDGET.record(budget), sys.stdout)
        return 0
    from rich.markup import escape

    from .._present.numbers import money

    kind = "hard" if budget.hard else "soft (alerts only)"
    console.print(
        f"Set {budget.id}: {escape(budget.subject)}, {money(budget.limit)} {budget.period} ({budget.timezone}), {kind}"
    )
    return 0


def list_budgets(args: argparse.Namespace, console: Console) -> int:
    from .._budgets.records import BUDGET

    rows = _budgets(args, existing=True).list(tenant_id=args.tenant_id)
    if _written(args, BUDGET, rows, {}):
        return 0
    if not rows:
        console.print("No budgets" + (f" within tenant {args.tenant_id}." if args.tenant_id else "."))
        return 0
    from rich.markup import escape
    from rich.table import Table

    from .._present.numbers import money

    table = Table(title="Budgets", title_justify="left", header_style="bold", pad_edge=False)
    for name in ("id", "subject", "period", "limit", "kind", "time zone", "alerts at"):
        table.add_column(name, justify="right" if name == "limit" else "left")
    for b in rows:
        period = b.period
        if b.period == "custom" and b.starts_at and b.ends_at:
            period = f"{b.starts_at:%Y-%m-%d %H:%M} → {b.ends_at:%Y-%m-%d %H:%M}"
        alerts = ", ".join(f"{p}%" for p in b.alert_at) or "none"
        table.add_row(b.id, escape(b.subject), period, money(b.limit), "hard" if b.hard else "soft", b.timezone, alerts)
    console.print(table)
    return 0


def remove_budget(args: argparse.Namespace, console: Console) -> int:
    from rich.markup import escape

    from .._errors import ConfigError

    has_subject = args.user_id or args.tenant_id or args.tag or args.default
    if bool(args.budget_id) == bool(has_subject):
        raise ConfigError("give a budget id, or a subject (--user, --tenant, --default, --tag), not both")
    removed = _budgets(args, existing=True).remove(
        args.budget_id, user_id=args.user_id, tenant_id=args.tenant_id, tag=args.tag, default=args.default,
        period=args.period,
    )  # fmt: skip
    for budget in removed:
        console.print(f"Removed {budget.id}: {escape(budget.subject)}, {budget.period}")
    return 0


def report(args: argparse.Namespace, console: Console) -> int:
    from .._budgets.records import STATUS

    rows = _budgets(args, existing=True).report(tenant_id=args.tenant_id, over_only=args.over)
    if _written(args, STATUS, rows, {"over_only": args.over}):
        return 0
    if not rows:
        console.print("No budgeted subjects" + (" over budget." if args.over else "."))
        return 0
    from rich.markup import escape
    from rich.table import Table

    from .._present.numbers import money

    table = Table(title="Budgets this period", title_justify="left", header_style="bold", pad_edge=False)
    for name in ("subject", "period", "spent", "limit", "used", "projected", "status"):
        table.add_column(
            name, justify="left" if name in ("subject", "period", "status") else "right", no_wrap=name != "subject"
        )
    for r in rows:
        status = "[red bold]over[/]" if r.over else "[yellow]near[/]" if r.used_pct >= 80 else "ok"
        projected = money(r.projected) if r.projected is not None else "—"
        table.add_row(
            escape(r.subject), r.budget.period, money(r.spent), money(r.limit), f"{r.used_pct}%", projected, status
        )
    console.print(table)
    over = sum(r.over for r in rows)
    console.print(f"{over} of {len(rows)} over budget · periods in each budget's time zone, spend as stored")
    return 0


def _written(args: argparse.Namespace, shape: Any, rows: list[Any], meta: dict[str, Any]) -> bool:
    """JSON or CSV on stdout when asked for; False for a table."""
    from .._present.output import write_csv, write_json

    if args.format == "json":
        write_json({**meta, "data": shape.records(rows)}, sys.stdout)
        return True
    if args.format == "csv":
        write_csv(shape.records(rows), sys.stdout, columns=shape.columns)
        return True
    return False


def _alerts(args: argparse.Namespace, *, webhook: bool = True) -> Any:
    from .._budgets.alerts import Alerts
    from .common import open_store

    url = getattr(args, "webhook", None) if webhook else ""
    return Alerts(open_store(args.store, existing=True), rules=getattr(args, "rule", None), webhook_url=url)


def list_alerts(args: argparse.Namespace, console: Console) -> int:
    from .._budgets.records import ALERT

    rows = _alerts(args, webhook=False).list(tenant_id=args.tenant_id, limit=max(1, args.limit))
    if _written(args, ALERT, rows, {}):
        return 0
    if not rows:
        console.print("No alerts have fired.")
        return 0
    from rich.markup import escape
    from rich.table import Table

    from .._present.numbers import when

    table = Table(title="Alerts", title_justify="left", header_style="bold", pad_edge=False)
    for name in ("fired (UTC)", "kind", "what", "delivery"):
        table.add_column(name, no_wrap=name != "what")
    for a in rows:
        delivery = a.delivery or "log only"
        if a.delivery == "pending":
            delivery = f"pending ({a.attempts} attempts: {a.last_error})"
        table.add_row(when(a.fired_at), a.kind, escape(ALERT.record(a)["message"]), escape(delivery))
    console.print(table)
    return 0


def test_alerts(args: argparse.Namespace, console: Console) -> int:
    alerts = _alerts(args)
    from rich.markup import escape

    from .._budgets.records import ALERT

    would = alerts.evaluate(dry_run=True)
    for alert in would:
        console.print(f"would fire: {escape(ALERT.record(alert)['message'])}")
    console.print(f"{len(would)} alert(s) would fire now ({len(alerts.rules)} rules besides the budgets' thresholds)")
    if alerts.deliverer is None:
        console.print("no webhook configured (SPANLEDGER_ALERT_WEBHOOK_URL): alerts go to the log only")
        return 0
    status, error = alerts.test()
    if error:
        console.print(f"[red]the webhook {alerts.deliverer.url} did not take the test alert: {error}[/]")
        return 1
    console.print(f"the webhook {alerts.deliverer.url} took a signed test alert (HTTP {status})")
    return 0


def run_alerts(args: argparse.Namespace, console: Console) -> int:
    alerts = _alerts(args)
    fired = alerts.evaluate()
    delivered = alerts.deliver()
    console.print(f"{len(fired)} alert(s) fired, {delivered} delivered to the webhook")
    return 0
