"""The ``spanledger`` command: who costs what, from the terminal.

Every error a user can cause (a bad DSN, a bad date, a bad ``--tag``, a store another process holds)
is one line on stderr, ``spanledger: error: …``, with exit code 2 for bad input and 1 for store
errors; never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

from rich.console import Console
from rich.markup import escape

from .. import __version__
from .._config import DEFAULT_STORE, env_str
from .._errors import ConfigError, SpanledgerError, StoreError
from .._model.rows import NO_TENANT_LABEL, UNATTRIBUTED_LABEL, Page, UserDetail
from .._present import records
from .._present.numbers import count, iso, money, when
from .._present.output import write_csv, write_json
from .._present.sorts import ranking_title
from .._present.tables import (
    TimeRange,
    calls_table,
    daily_table,
    models_table,
    tenants_table,
    top_users_table,
    users_table,
)
from .._query.ledger import Ledger
from .._query.rankings import SORT_KEYS
from .._query.timebound import parse_bound
from .._store.store import Store

PROG = "spanledger"
DEFAULT_LIMIT = 20
FORMATS = ("table", "json", "csv")


class UsageError(Exception):
    """A command line argparse could not accept."""


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors become one line instead of usage text and ``exit(2)``."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _tag(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"bad tag {text!r}: expected key=value, e.g. --tag plan=pro")
    return key.strip(), value.strip()


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be 1 or more")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: one sub-command per question."""
    store = _Parser(add_help=False)
    store.add_argument(
        "--store",
        metavar="DSN",
        help=f"chdb:///dir, chdb://memory or http(s)://user:pass@host:port/db "
        f"(default: $SPANLEDGER_STORE, then {DEFAULT_STORE})",
    )
    window = _Parser(add_help=False)
    window.add_argument("--from", dest="start", metavar="WHEN", help="start: ISO date/time (UTC) or 7d, 24h, 90m ago")
    window.add_argument("--to", dest="end", metavar="WHEN", help="end (exclusive), same forms; default now")
    tenant = _Parser(add_help=False)
    tenant.add_argument("--tenant", metavar="ID", help="only this tenant")
    tags = _Parser(add_help=False)
    tags.add_argument(
        "--tag", action="append", type=_tag, default=[], metavar="K=V", help="only calls with this tag (repeatable)"
    )
    listing = _Parser(add_help=False)
    listing.add_argument("--search", metavar="TEXT", help="only ids containing TEXT (case-insensitive)")
    listing.add_argument("--sort", choices=SORT_KEYS, default="cost", help="sort key (default: cost)")
    order = listing.add_mutually_exclusive_group()
    order.add_argument("--asc", dest="order", action="store_const", const="asc", help="ascending")
    order.add_argument("--desc", dest="order", action="store_const", const="desc", help="descending (default)")
    listing.add_argument(
        "--limit", type=_positive, default=DEFAULT_LIMIT, help=f"rows per page (default {DEFAULT_LIMIT})"
    )
    listing.add_argument("--page", type=_positive, default=1, help="page number (default 1)")
    output = _Parser(add_help=False)
    output.add_argument("--format", choices=FORMATS, default="table", help="table (default), json or csv")

    parser = _Parser(
        prog=PROG,
        description="Which of our customers costs us the most LLM spend? Exact USD per user and tenant.",
        epilog="Start with `spanledger demo`, then `spanledger users --from 24h`.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        parents=[store],
        help="send a simulated day of LLM traffic through the real pipeline, then show the top users",
        description="Send a seeded, simulated day of LLM traffic (real OpenAI client and instrumentation "
        "against a local stub server) through spanledger, then show who costs the most. Replaces what a "
        "previous demo wrote to the same store; refuses to touch a database holding other data.",
    )
    demo.add_argument("--calls", type=_positive, default=None, help="number of LLM calls (default 1500)")
    demo.add_argument("--seed", type=int, default=None, help="random seed (default 7): same seed, same numbers")
    demo.set_defaults(handler=_cmd_demo)

    overview = sub.add_parser(
        "overview", parents=[store, window, tenant, tags], help="total spend, top users and tenants, cost per day"
    )
    overview.add_argument("--top", type=_positive, default=10, help="top users and tenants to show (default 10)")
    overview.add_argument("--format", choices=("table", "json"), default="table", help="table (default) or json")
    overview.set_defaults(handler=_cmd_overview)

    users = sub.add_parser("users", parents=[store, window, tenant, tags, listing, output], help="users ranked by cost")
    users.set_defaults(handler=_cmd_ranked)

    user = sub.add_parser("user", parents=[store, window, tenant, output], help="one user: models, days, recent calls")
    user.add_argument("user_id", metavar="ID", help=f"the user id; {UNATTRIBUTED_LABEL!r} or '' for calls with no user")
    user.add_argument("--calls", type=int, default=10, help="recent calls to show (default 10; 0 for none)")
    user.set_defaults(handler=_cmd_user)

    tenants = sub.add_parser("tenants", parents=[store, window, tags, listing, output], help="tenants ranked by cost")
    tenants.set_defaults(handler=_cmd_ranked)

    daily = sub.add_parser("daily", parents=[store, window, tenant, tags, output], help="cost per UTC day")
    daily.add_argument("--user", dest="user_id", metavar="ID", help="only this user")
    daily.add_argument("--per", choices=("user", "tenant"), help="split each day per user or per tenant")
    daily.set_defaults(handler=_cmd_daily)

    schema = sub.add_parser("schema", parents=[store], help="print the ClickHouse DDL (tables and materialized views)")
    schema.add_argument("--cluster", metavar="NAME", help="DDL for a ClickHouse cluster (ON CLUSTER, replicated)")
    schema.set_defaults(handler=_cmd_schema)

    status = sub.add_parser(
        "status", parents=[store], help="the exporter's spool and counters, and what the store holds"
    )
    status.add_argument(
        "--spool-dir", metavar="DIR", help="spool directory (default: $SPANLEDGER_SPOOL_DIR, then beside the store)"
    )
    status.add_argument("--format", choices=("table", "json"), default="table", help="table (default) or json")
    status.set_defaults(handler=_cmd_status)

    quarantine = sub.add_parser(
        "quarantine",
        parents=[store],
        help="calls set aside (refused by the store, or past a bound): list them, or price and insert them again",
        description="Calls the store refused for their data, or whose value lies past a documented bound (a cost "
        "of $1,000,000 or more for one call), are kept in a quarantine next to the spool instead of blocking the "
        "rest. `list` shows them; `replay` prices them again with the current price rules and inserts the ones "
        "now within bounds (calls the store already holds are dropped: a replay never counts a call twice).",
    )
    quarantine.add_argument("action", choices=("list", "replay"))
    quarantine.add_argument(
        "--spool-dir", metavar="DIR", help="spool directory (default: $SPANLEDGER_SPOOL_DIR, then beside the store)"
    )
    quarantine.add_argument("--price-file", metavar="FILE", help="price rules for the replay ($SPANLEDGER_PRICE_FILE)")
    quarantine.add_argument("--dry-run", action="store_true", help="replay: say what would happen, change nothing")
    quarantine.add_argument("--format", choices=("table", "json"), default="table", help="table (default) or json")
    quarantine.set_defaults(handler=_cmd_quarantine)

    serve = sub.add_parser(
        "serve",
        parents=[store],
        help="OTLP/HTTP ingest, JSON API and dashboard in one process",
        description="Receive spans over OTLP/HTTP (POST /v1/traces), answer the JSON API (/api/v1) and serve "
        "the dashboard, all on one port. Tokens come from SPANLEDGER_ADMIN_TOKEN, SPANLEDGER_TENANT_TOKENS "
        "(tenant=token,...), SPANLEDGER_INGEST_TOKEN or --token-file; never from the command line.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=4318, help="port (default 4318, the standard OTLP/HTTP port)")
    serve.add_argument("--no-auth", action="store_true", help="no tokens at all; refused unless --host is loopback")
    serve.add_argument("--token-file", metavar="FILE", help="TOML token file (default: $SPANLEDGER_TOKEN_FILE)")
    serve.add_argument(
        "--max-request-bytes",
        type=_positive,
        metavar="N",
        help="OTLP request size limit, before and after decompression (default 20 MiB)",
    )
    serve.set_defaults(handler=_cmd_serve)
    return parser


# ---------------------------------------------------------------- helpers


def _console() -> Console:
    # A table piped to a file or a pager is not limited by a terminal: give it room.
    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(width=120)
    return console


def _window(args: argparse.Namespace) -> TimeRange:
    now = datetime.now(UTC)
    return TimeRange(parse_bound(args.start, now=now), parse_bound(args.end, now=now))


def _tags(args: argparse.Namespace) -> dict[str, str]:
    found: dict[str, str] = {}
    for key, value in args.tag:
        if key in found and found[key] != value:
            raise ConfigError(f"--tag {key} given twice ({found[key]!r} and {value!r}); a call has one value per tag")
        found[key] = value
    return found


def _user_id(text: str) -> str:
    return "" if text.strip() in ("", UNATTRIBUTED_LABEL) else text


def open_store(dsn: str | None) -> Store:
    """Open the store; on failure chDB's own complaint on stderr is dropped, our one-line error says it."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:
        return Store(dsn)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            store = Store(dsn)
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        chatter = captured.read()
    if chatter:  # it opened: whatever was said is worth showing
        sys.stderr.buffer.write(chatter)
        sys.stderr.flush()
    return store


def _ledger(args: argparse.Namespace) -> Ledger:
    return Ledger(open_store(args.store))


# ---------------------------------------------------------------- commands


def _cmd_overview(args: argparse.Namespace, console: Console) -> int:
    """The window at a glance: what the dashboard's front page shows."""
    window, tags = _window(args), _tags(args)
    ov = _ledger(args).overview(start=window.start, end=window.end, tenant_id=args.tenant, tags=tags, top=args.top)
    if args.format == "json":
        write_json({"window": window.as_dict(), **records.overview_record(ov)}, sys.stdout)
        return 0
    t = ov.totals
    if not t.usage.requests:
        console.print(f"No LLM calls match ({window.describe()}).")
        return 0
    console.print(
        f"[green bold]{money(t.usage.cost)}[/] over {count(t.usage.requests)} requests · "
        f"{count(t.active_users)} users in {count(t.tenants)} tenants · {window.describe()}"
    )
    if ov.unattributed_requests:
        console.print(
            f"  [yellow]{money(ov.unattributed_cost)} from {count(ov.unattributed_requests)} calls with no user[/]"
        )
    _unpriced_note(console, t.usage.unpriced_requests, where="in this window")
    console.print()
    width = console.width
    shown = f"top {len(ov.top_users)} · {count(t.active_users)} attributed users in all"
    console.print(top_users_table(ov.top_users, title=ranking_title("Top users", "cost"), caption=shown, width=width))
    tenants = Page(rows=ov.top_tenants, total=t.tenants, page=1, limit=args.top)
    console.print(tenants_table(tenants, window, title=ranking_title("Top tenants", "cost"), width=width))
    console.print(daily_table(ov.daily, title="Cost per day", caption="UTC days with calls", width=width))
    return 0


def _cmd_ranked(args: argparse.Namespace, console: Console) -> int:
    """``users`` and ``tenants``: one page of a ranking, as a table, JSON or CSV."""
    window, tags = _window(args), _tags(args)
    ledger, users = _ledger(args), args.command == "users"
    common: dict[str, Any] = {"start": window.start, "end": window.end, "tags": tags, "search": args.search}
    order = args.order or "desc"
    paging: dict[str, Any] = {"sort_by": args.sort, "sort_dir": order, "page": args.page, "limit": args.limit}
    page: Page[Any] = (
        ledger.users(tenant_id=args.tenant, **paging, **common) if users else ledger.tenants(**paging, **common)
    )
    shape = records.USER if users else records.TENANT
    if args.format == "json":
        meta = {"window": window.as_dict(), "sort_by": args.sort, "sort_dir": order}
        write_json(records.page_record(page, shape, **meta), sys.stdout)
    elif args.format == "csv":
        write_csv(shape.records(page.rows), sys.stdout, columns=shape.columns)
    elif not page.total:
        console.print(f"No {args.command} with LLM calls match ({window.describe()}).")
    else:
        table = users_table if users else tenants_table
        console.print(table(page, window, sort_by=args.sort, sort_dir=order, width=console.width))
        _unpriced_note(console, sum(r.usage.unpriced_requests for r in page.rows))
    return 0


def _cmd_user(args: argparse.Namespace, console: Console) -> int:
    window = _window(args)
    user_id = _user_id(args.user_id)
    ledger = _ledger(args)
    detail = ledger.user(user_id, start=window.start, end=window.end, tenant_id=args.tenant, calls=max(0, args.calls))
    if args.format == "json":
        body = records.user_detail_record(user_id, detail.summary, detail.models, detail.daily, detail.calls)
        write_json({"window": window.as_dict(), **body}, sys.stdout)
    elif args.format == "csv":
        write_csv(records.MODEL.records(detail.models), sys.stdout, columns=records.MODEL.columns)
    else:
        _print_user(console, ledger, detail, window)
    return 0


def _print_user(console: Console, ledger: Ledger, detail: UserDetail, window: TimeRange) -> None:
    label = detail.user_id or UNATTRIBUTED_LABEL
    if detail.summary is None:
        console.print(f"No LLM calls for [bold]{escape(label)}[/] ({window.describe()}).")
        if detail.user_id:
            similar = ledger.users(search=detail.user_id[:24], start=window.start, end=window.end, limit=5).rows
            if similar:
                console.print("Did you mean: " + escape(", ".join(row.label for row in similar)) + "?")
        return
    s = detail.summary
    u = s.usage
    tenants = escape(", ".join(t or NO_TENANT_LABEL for t in s.tenant_ids)) or NO_TENANT_LABEL
    console.print(f"[bold]{escape(label)}[/]  tenant {tenants}  ·  {window.describe()}")
    lines = [
        f"[green bold]{money(u.cost)}[/] over {count(u.requests)} requests "
        f"({count(u.errors)} errors" + (f", {count(u.traces)} traces)" if u.traces is not None else ")"),
        f"{count(u.total_tokens)} tokens: {count(u.input_tokens)} input ({count(u.cache_read_tokens)} cached), "
        f"{count(u.output_tokens)} output ({count(u.reasoning_tokens)} reasoning)",
        f"first seen {when(u.first_seen)}, last seen {when(u.last_seen)} UTC · avg latency {u.avg_latency_ms:,.1f} ms",
    ]
    if u.unpriced_requests:
        lines.append(
            f"[yellow]{count(u.unpriced_requests)} unpriced calls ({count(u.unpriced_tokens)} tokens) "
            "are not in the cost: their model has no known price[/]"
        )
    for line in lines:
        console.print("  " + line)
    console.print()
    width = console.width
    console.print(models_table(detail.models, title="Per model", caption=f"{len(detail.models)} models", width=width))
    days = f"{len(detail.daily)} days with calls (UTC)"
    console.print(daily_table(detail.daily, title="Per day", caption=days, width=width))
    if detail.calls:
        console.print(calls_table(detail.calls, title=f"{len(detail.calls)} most recent calls", width=width))


def _cmd_daily(args: argparse.Namespace, console: Console) -> int:
    window, tags = _window(args), _tags(args)
    user_id = _user_id(args.user_id) if args.user_id is not None else None
    rows = _ledger(args).daily(
        start=window.start, end=window.end, user_id=user_id, tenant_id=args.tenant, per=args.per, tags=tags
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


def _cmd_schema(args: argparse.Namespace, console: Console) -> int:
    from .._store.store import _parse

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


def _cmd_demo(args: argparse.Namespace, console: Console) -> int:
    from .._demo.demo import run_demo

    dsn = env_str("SPANLEDGER_STORE", args.store, DEFAULT_STORE)
    store = open_store(dsn)
    return run_demo(store=store, calls=args.calls, seed=args.seed, console=console, show_store=args.store is not None)


def _cmd_status(args: argparse.Namespace, console: Console) -> int:
    import json
    from pathlib import Path

    from .._ingest.paths import default_spool_dir
    from .._ingest.status import spool_status, store_status

    dsn = env_str("SPANLEDGER_STORE", args.store, DEFAULT_STORE)
    spool_root = env_str("SPANLEDGER_SPOOL_DIR", args.spool_dir, "")
    report: dict[str, object] = {"store": dsn.split("@")[-1] if "@" in dsn else dsn}
    report["spool"] = spool_status(Path(spool_root) if spool_root else default_spool_dir(dsn))
    try:
        report["store_contents"] = store_status(open_store(dsn))
    except StoreError as exc:  # an exporter holding the embedded store is normal, not a failure of status
        report["store_contents"] = {"error": " ".join(str(exc).split())}
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


def _cmd_quarantine(args: argparse.Namespace, console: Console) -> int:
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

    pipeline = Pipeline(open_store(dsn), spool_dir=root, price_file=args.price_file)
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


def _cmd_serve(args: argparse.Namespace, console: Console) -> int:
    try:
        from .._server import serve
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"`spanledger serve` needs the serve extra: pip install 'spanledger[serve]' ({exc})"
        ) from None
    return serve(
        store=open_store(args.store),
        host=args.host,
        port=args.port,
        no_auth=args.no_auth,
        token_file=args.token_file,
        max_request_bytes=args.max_request_bytes,
    )


def _unpriced_note(console: Console, unpriced: int, *, where: str = "above") -> None:
    if unpriced:
        console.print(
            f"[yellow]{count(unpriced)} calls {where} are unpriced[/] (a model with no known price): counted in "
            "requests and tokens, not in cost. Give it a price with SPANLEDGER_PRICE_FILE."
        )


# ---------------------------------------------------------------- entry point


def _fail(message: str, code: int) -> int:
    sys.stdout.flush()
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)  # always one line
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 store error, 2 bad input)."""
    logging.basicConfig(level=logging.WARNING, format=f"{PROG}: %(levelname)s: %(message)s")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        handler: Callable[[argparse.Namespace, Console], int] | None = getattr(args, "handler", None)
        if handler is None:
            parser.print_help()
            return 0
        return handler(args, _console())
    except UsageError as exc:
        return _fail(str(exc), 2)
    except StoreError as exc:
        return _fail(str(exc), 1)
    except ConfigError as exc:
        return _fail(str(exc), 2)
    except SpanledgerError as exc:
        return _fail(str(exc), 1)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except BrokenPipeError:
        # the reader went away (``| head``): stop quietly, and keep Python from complaining at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
