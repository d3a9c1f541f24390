"""The questions: ``overview``, ``users`` / ``tenants``, ``user`` and ``daily`` — tables, JSON or CSV."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from .._errors import ConfigError, unknown_user
from .._model.rows import NO_TENANT_LABEL, UNATTRIBUTED_LABEL, Page, UserDetail
from .._present import records
from .._present.customers import profile_lines, tools_table
from .._present.numbers import count, money, plural, when
from .._present.output import write_csv, write_json
from .._present.sorts import ranking_title
from .._present.tables import (
    TimeRange,
    calls_table,
    daily_table,
    models_table,
    tenants_table,
    top_users_table,
    unnamed_line,
    users_table,
)
from . import common
from .remote import RemoteLedger  # the standard library's urllib only: cheap to import

if TYPE_CHECKING:
    pass


def overview(args: argparse.Namespace, console: Console) -> int:
    """The window at a glance: what the dashboard's front page shows."""
    window, tags = common.window(args), common.tags(args)
    ov = common.ledger(args).overview(
        start=window.start, end=window.end, tenant_id=common.tenant_id(args.tenant), tags=tags, top=args.top
    )
    if args.format == "json":
        write_json({"window": window.as_dict(), **records.overview_record(ov)}, sys.stdout)
        return 0
    t = ov.totals
    if not t.usage.requests:
        console.print(f"No LLM calls match ({window.describe()}).")
        return 0
    console.print(
        f"[green bold]{money(t.usage.cost)}[/] over {plural(t.usage.requests, 'request')} · "
        f"{plural(t.active_users, 'user')} in {plural(t.tenants, 'tenant')} · {window.describe()}"
    )
    if ov.unattributed_requests:
        console.print(
            f"  [yellow]{money(ov.unattributed_cost)} from {plural(ov.unattributed_requests, 'call')} with no user[/]"
        )
    if ov.no_tenant_requests:
        console.print(f"  {money(ov.no_tenant_cost)} from {plural(ov.no_tenant_requests, 'call')} with no tenant")
    common.unpriced_note(console, t.usage.unpriced_requests, where="in this window")
    console.print()
    width = console.width
    shown = f"top {len(ov.top_users)} · {plural(t.active_users, 'user')} in all"
    console.print(top_users_table(ov.top_users, title=ranking_title("Top users", "cost"), caption=shown, width=width))
    tenants = Page(rows=ov.top_tenants, total=t.tenants, page=1, limit=args.top)
    console.print(tenants_table(tenants, window, title=ranking_title("Top tenants", "cost"), width=width))
    console.print(daily_table(ov.daily, title="Cost per day", caption="UTC days with calls", width=width))
    return 0


def ranked(args: argparse.Namespace, console: Console) -> int:
    """``users`` and ``tenants``: one page of a ranking, as a table, JSON or CSV."""
    window, tags = common.window(args), common.tags(args)
    ledger, users = common.ledger(args), args.command == "users"
    shared: dict[str, Any] = {"start": window.start, "end": window.end, "tags": tags, "search": args.search}
    order = args.order or "desc"
    paging: dict[str, Any] = {"sort_by": args.sort, "sort_dir": order, "page": args.page, "limit": args.limit}
    page: Page[Any] = (
        ledger.users(
            tenant_id=common.tenant_id(args.tenant), include_inactive=args.include_inactive, **paging, **shared
        )
        if users
        else ledger.tenants(**paging, **shared)
    )
    shape = records.USER if users else records.TENANT
    unnamed = "unattributed" if users else "no_tenant"
    if args.format == "json":
        meta: dict[str, Any] = {"window": window.as_dict(), "sort_by": args.sort, "sort_dir": order}
        if users:
            meta["inactive"] = page.inactive
        write_json(records.page_record(page, shape, unnamed=unnamed, **meta), sys.stdout)
    elif args.format == "csv":
        write_csv(shape.records(page.rows), sys.stdout, columns=shape.columns)
    elif not page.total:
        console.print(f"No {args.command} with LLM calls match ({window.describe()}).")
    else:
        table = users_table if users else tenants_table
        console.print(table(page, window, sort_by=args.sort, sort_dir=order, width=console.width))
        common.unpriced_note(console, sum(r.usage.unpriced_requests for r in page.rows))
    line = unnamed_line(page, users=users) if args.format == "table" else None
    if line:
        console.print(line)
    return 0


def user(args: argparse.Namespace, console: Console) -> int:
    window = common.window(args)
    user_id = common.user_id(args.user_id)
    ledger = common.ledger(args)
    tenant = common.tenant_id(args.tenant)
    detail = ledger.user(user_id, start=window.start, end=window.end, tenant_id=tenant, calls=max(0, args.calls))
    # through serve, the API answers an unknown user with a 404 that arrives here as the same ConfigError
    if (
        detail.summary is None
        and detail.profile is None
        and not isinstance(ledger, RemoteLedger)
        and not ledger.seen(user_id=user_id, tenant_id=tenant)
    ):
        raise ConfigError(unknown_user(user_id, tenant, ledger.similar(user_id, tenant_id=tenant)))
    if args.format == "json":
        body = records.user_detail_record(
            user_id,
            detail.summary,
            detail.models,
            detail.daily,
            detail.calls,
            profile=detail.profile,
            tools=detail.tools,
        )
        write_json({"window": window.as_dict(), **body}, sys.stdout)
    elif args.format == "csv":
        write_csv(records.MODEL.records(detail.models), sys.stdout, columns=records.MODEL.columns)
    else:
        _print_user(console, detail, window)
    return 0


def _print_user(console: Console, detail: UserDetail, window: TimeRange) -> None:
    label = detail.user_id or UNATTRIBUTED_LABEL
    if detail.profile is not None:
        for line in profile_lines(detail.profile):
            console.print(line)
        console.print()
    if detail.summary is None:
        console.print(f"No LLM calls for [bold]{escape(label)}[/] in this window ({window.describe()}).")
        return
    s = detail.summary
    u = s.usage
    tenants = escape(", ".join(t or NO_TENANT_LABEL for t in s.tenant_ids)) or NO_TENANT_LABEL
    console.print(f"[bold]{escape(label)}[/]  tenant {tenants}  ·  {window.describe()}")
    # avg latency rounded as records carry it first: the same figure when the detail came through serve's API
    lines = [
        f"[green bold]{money(u.cost)}[/] over {plural(u.requests, 'request')} "
        f"({plural(u.errors, 'error')}" + (f", {plural(u.traces, 'trace')})" if u.traces is not None else ")"),
        f"{count(u.total_tokens)} tokens: {count(u.input_tokens)} input ({count(u.cache_read_tokens)} cached), "
        f"{count(u.output_tokens)} output ({count(u.reasoning_tokens)} reasoning)",
        f"first seen {when(u.first_seen)}, last seen {when(u.last_seen)} UTC · avg latency {round(u.avg_latency_ms, 3):,.1f} ms",
    ]
    if u.unpriced_requests:
        lines.append(
            f"[yellow]{plural(u.unpriced_requests, 'unpriced call')} ({plural(u.unpriced_tokens, 'token')}) "
            "are not in the cost: their model has no known price[/]"
        )
    for line in lines:
        console.print("  " + line)
    console.print()
    width = console.width
    models = plural(s.distinct_models, "model") + " answered"
    console.print(models_table(detail.models, title="Per model", caption=models, width=width))
    days = f"{len(detail.daily)} days with calls (UTC)"
    console.print(daily_table(detail.daily, title="Per day", caption=days, width=width))
    if detail.tools:
        console.print(tools_table(detail.tools, title="Per tool", caption="tool executions", width=width))
    if detail.calls:
        console.print(calls_table(detail.calls, title=f"{len(detail.calls)} most recent calls", width=width))


def daily(args: argparse.Namespace, console: Console) -> int:
    window, tags = common.window(args), common.tags(args)
    user_id = common.user_id(args.user_id) if args.user_id is not None else None
    rows = common.ledger(args).daily(
        start=window.start,
        end=window.end,
        user_id=user_id,
        tenant_id=common.tenant_id(args.tenant),
        per=args.per,
        tags=tags,
    )
    if args.format == "json":
        write_json({"window": window.as_dict(), "per": args.per, "data": records.DAILY.records(rows)}, sys.stdout)
    elif args.format == "csv":
        write_csv(records.DAILY.records(rows), sys.stdout, columns=records.DAILY.columns)
    else:
        key_title = {"user": "User", "tenant": "Tenant"}.get(args.per or "")
        title, caption = "LLM cost per day", window.describe()
        console.print(daily_table(rows, title=title, caption=caption, key_title=key_title, width=console.width))
    return 0
