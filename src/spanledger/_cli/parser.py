"""The ``spanledger`` command line: every sub-command and its options (argparse only: cheap to import).

Each sub-command names its handler as ``"module.function"`` in this package; :mod:`.main` imports that
module only when the command runs, so ``--help`` and a mistyped option answer without loading the store.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

from .. import __version__
from .._config import DEFAULT_STORE
from .._model.rows import SORT_KEYS, UNATTRIBUTED_LABEL

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


def _trace(text: str) -> int:
    cleaned = text.strip().lower()
    if len(cleaned) != 32 or any(c not in "0123456789abcdef" for c in cleaned):
        raise argparse.ArgumentTypeError(f"bad trace id {text[:40]!r}: 32 hex digits")
    return int(cleaned, 16)


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
    reader = _Parser(add_help=False)  # the questions: from the store, or through a running spanledger serve
    reader.add_argument(
        "--server",
        metavar="URL",
        help="ask this spanledger serve's API instead of opening the store (http://host:port); without it, a "
        "serve holding the embedded store is found and asked",
    )
    reader.add_argument(
        "--token",
        metavar="TOKEN",
        help="admin or tenant token for the server (default: $SPANLEDGER_TOKEN, which other users cannot see; "
        "a server found beside the store also takes $SPANLEDGER_ADMIN_TOKEN)",
    )
    window = _Parser(add_help=False)
    window.add_argument("--from", dest="start", metavar="WHEN", help="start: ISO date/time (UTC) or 7d, 24h, 90m ago")
    window.add_argument("--to", dest="end", metavar="WHEN", help="end (exclusive), same forms; default now")
    tenant = _Parser(add_help=False)
    tenant.add_argument("--tenant", metavar="ID", help="only this tenant ('(no tenant)': the calls without one)")
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
        epilog="Start with `spanledger demo`, then `spanledger users --from 7d`.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        parents=[store],
        help="send a simulated month of LLM traffic through the real pipeline, then show what it holds",
        description="Send a seeded, simulated month of LLM traffic through spanledger (the last day as real "
        "requests: OpenAI client and instrumentation against a local stub server), then show what the month "
        "holds and who costs the most. Replaces what a previous demo wrote to the same store; refuses to touch "
        "a database holding other data.",
    )
    demo.add_argument("--calls", type=_positive, default=None, help="LLM calls in the month (default 30000)")
    demo.add_argument("--seed", type=int, default=None, help="random seed (default 7)")
    demo.add_argument(
        "--until",
        metavar="WHEN",
        help="the month ends here: ISO date/time (UTC), not in the future (default: the start of this hour); "
        "the same seed and end, the same numbers",
    )
    demo.set_defaults(handler="operations.demo")

    overview = sub.add_parser(
        "overview",
        parents=[store, reader, window, tenant, tags],
        help="total spend, top users and tenants, cost per day",
    )
    overview.add_argument("--top", type=_positive, default=10, help="top users and tenants to show (default 10)")
    overview.add_argument("--format", choices=("table", "json"), default="table", help="table (default) or json")
    overview.set_defaults(handler="reports.overview")

    users = sub.add_parser(
        "users", parents=[store, reader, window, tenant, tags, listing, output], help="users ranked by cost"
    )
    users.add_argument(
        "--include-inactive",
        action="store_true",
        help="also the customers with a profile and no calls in the window (zero usage, after the others)",
    )
    users.set_defaults(handler="reports.ranked")

    user = sub.add_parser(
        "user", parents=[store, reader, window, tenant, output], help="one user: models, days, recent calls"
    )
    user.add_argument("user_id", metavar="ID", help=f"the user id; {UNATTRIBUTED_LABEL!r} or '' for calls with no user")
    user.add_argument("--calls", type=int, default=10, help="recent calls to show (default 10; 0 for none)")
    user.set_defaults(handler="reports.user")

    tenants = sub.add_parser(
        "tenants", parents=[store, reader, window, tags, listing, output], help="tenants ranked by cost"
    )
    tenants.set_defaults(handler="reports.ranked")

    calls = sub.add_parser(
        "calls",
        parents=[store, reader, window, tenant, tags],
        help="every call, newest first, filtered; page on with --cursor",
        description="The calls explorer: every stored call, newest first, filtered by user, tenant, provider, "
        "model, status, flags, tags and cost. A page ends with the cursor of the next (older) page.",
    )
    calls.add_argument("--user", dest="user_id", metavar="ID", help="only this user ('(unattributed)': no user)")
    calls.add_argument("--provider", metavar="NAME", help="only this provider (openai, anthropic …)")
    calls.add_argument("--model", metavar="NAME", help="only calls this model answered")
    calls.add_argument("--status", choices=("ok", "error"), help="only calls that succeeded, or failed")
    calls.add_argument(
        "--flag",
        action="append",
        default=[],
        choices=("unpriced", "cached", "incomplete", "repaired"),
        help="only calls with this flag (repeatable; each must hold)",
    )
    calls.add_argument("--min-cost", metavar="USD", help="cost at least this (e.g. 0.05)")
    calls.add_argument("--max-cost", metavar="USD", help="cost at most this")
    calls.add_argument("--trace", type=_trace, metavar="HEX", help="only the calls of this trace (32 hex digits)")
    calls.add_argument("--cursor", metavar="C", help="continue from a previous page's cursor")
    calls.add_argument("--newer", action="store_true", help="with --cursor: the newer calls (the page before)")
    calls.add_argument("--count", action="store_true", help="also count every matching call")
    calls.add_argument(
        "--limit", type=_positive, default=DEFAULT_LIMIT, help=f"calls per page (default {DEFAULT_LIMIT})"
    )
    calls.add_argument("--format", choices=FORMATS, default="table", help="table (default), json or csv")
    calls.set_defaults(handler="calls.calls")

    daily = sub.add_parser("daily", parents=[store, reader, window, tenant, tags, output], help="cost per UTC day")
    daily.add_argument("--user", dest="user_id", metavar="ID", help="only this user")
    daily.add_argument("--per", choices=("user", "tenant"), help="split each day per user or per tenant")
    daily.set_defaults(handler="reports.daily")

    schema = sub.add_parser("schema", parents=[store], help="print the ClickHouse DDL (tables and materialized views)")
    schema.add_argument("--cluster", metavar="NAME", help="DDL for a ClickHouse cluster (ON CLUSTER, replicated)")
    schema.set_defaults(handler="operations.schema")

    status = sub.add_parser(
        "status", parents=[store], help="the exporter's spool and counters, and what the store holds"
    )
    status.add_argument(
        "--spool-dir", metavar="DIR", help="spool directory (default: $SPANLEDGER_SPOOL_DIR, then beside the store)"
    )
    status.add_argument("--format", choices=("table", "json"), default="table", help="table (default) or json")
    status.set_defaults(handler="operations.status")

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
    quarantine.set_defaults(handler="operations.quarantine")

    rebuild = sub.add_parser(
        "rebuild",
        parents=[store],
        help="recompute the rollups from the stored calls (after deleting calls, or to check them)",
        description="Recompute every rollup (or --table) for the given UTC days (default: all), narrowed to tenants "
        "or users, from llm_calls, and check each day against it. Readers see the old month or the new one, never "
        "a mix; spanledger writers of the store hold their inserts meanwhile (their spools keep accepting calls).",
    )
    rebuild.add_argument("--from", dest="start", metavar="DAY", help="first UTC day (YYYY-MM-DD)")
    rebuild.add_argument("--to", dest="end", metavar="DAY", help="day after the last (exclusive)")
    rebuild.add_argument(
        "--tenant", dest="tenants", action="append", metavar="ID", help="only this tenant (repeatable)"
    )
    rebuild.add_argument("--user", dest="users", action="append", metavar="ID", help="only this user (repeatable)")
    rebuild.add_argument("--format", choices=("table", "json"), default="table", help="table (default) or json")
    rebuild.set_defaults(handler="operations.rebuild")

    _billing(sub, store, output)
    # --- privacy (issue 15): forget a user, retention ------------------------------------------------------
    forget = sub.add_parser(
        "forget",
        parents=[store, tenant],
        help="delete (or anonymize) one user's calls, rollups, spooled calls and rows in every table",
        description="Forget a user everywhere: their rows in every table that has a user_id column, the rollups "
        "(rebuilt, so tenant totals drop by exactly their spend), captured content, spooled and quarantined calls. "
        "--mode anonymize replaces the id by a random pseudonym instead (totals unchanged, content removed). The id "
        "may be given in clear: it is hashed with SPANLEDGER_ID_KEY (required: the audit record keeps a keyed hash, "
        "never the id) for a pseudonymized ledger. Running it again is a no-op; an unknown id changes nothing.",
    )
    forget.add_argument("user_id", metavar="USER_ID", help="the user id as your application knows it")
    forget.add_argument(
        "--mode", choices=("delete", "anonymize"), default="delete", help="delete (default) or anonymize"
    )
    forget.add_argument(
        "--spool-dir", metavar="DIR", help="spool directory (default: $SPANLEDGER_SPOOL_DIR, then beside the store)"
    )
    forget.add_argument("--dry-run", action="store_true", help="say what would be forgotten, change nothing")
    forget.add_argument("--format", choices=("table", "json"), default="table", help="table (default) or json")
    forget.set_defaults(handler="privacy.forget")

    retention = sub.add_parser(
        "retention",
        parents=[store],
        help="show or set how long raw calls, captured content and rollups are kept (ClickHouse TTLs)",
        description="Without options, show the retention. With them, set it (DAYS: 1 or more, or 'forever'); "
        "only what differs is changed. Writers apply SPANLEDGER_RETENTION_DAYS, SPANLEDGER_CONTENT_RETENTION_DAYS "
        "and SPANLEDGER_ROLLUP_RETENTION_DAYS the same way when they open the store.",
    )
    retention.add_argument("--calls", metavar="DAYS", help="raw calls (llm_calls)")
    retention.add_argument("--content", metavar="DAYS", help="captured prompts and completions (at most --calls)")
    retention.add_argument("--rollups", metavar="DAYS", help="every rollup (at least --calls)")
    retention.add_argument("--format", choices=("table", "json"), default="table", help="table (default) or json")
    retention.set_defaults(handler="privacy.retention")
    customers = sub.add_parser(
        "customers",
        parents=[store],
        help="customer profiles (names, e-mails, plans behind the ids): import a file, list, show one",
        description="A profile per user (in their tenant) or per tenant (no user id): the name shown beside the id, "
        "an e-mail, a plan, free-form metadata. `import FILE.csv|.jsonl` checks every row first and imports the "
        "whole file or nothing (bad rows are listed by line); importing the same file again changes nothing. "
        "Columns/keys: user_id, tenant_id, display_name, email, plan, metadata (an object), metadata.<key>; what a "
        "row leaves out is kept.",
    )
    customers.add_argument("action", choices=("import", "list", "show"))
    customers.add_argument("target", nargs="?", metavar="FILE|ID", help="import: the file; show: the user id")
    customers.add_argument("--tenant", metavar="ID", help="the tenant (show: of the user, or alone for its own)")
    customers.add_argument("--search", metavar="TEXT", help="list: ids, names or e-mails containing TEXT")
    customers.add_argument("--kind", choices=("user", "tenant"), help="list: only users' or only tenants' profiles")
    customers.add_argument("--file-format", choices=("csv", "jsonl"), help="import: the format (default: by extension)")
    customers.add_argument("--dry-run", action="store_true", help="import: check the file, write nothing")
    customers.add_argument(
        "--limit", type=_positive, default=DEFAULT_LIMIT, help=f"list: rows per page (default {DEFAULT_LIMIT})"
    )
    customers.add_argument("--page", type=_positive, default=1, help="list: page number (default 1)")
    customers.add_argument("--format", choices=FORMATS, default="table", help="table (default), json or csv")
    customers.set_defaults(handler="customers.customers")

    tools = sub.add_parser(
        "tools",
        parents=[store, window, tenant, tags, output],
        help="tool executions per tool, or per user and tool (--per-user)",
    )
    tools.add_argument("--user", dest="user_id", metavar="ID", help="only this user")
    tools.add_argument("--per-user", action="store_true", help="one row per tenant, user and tool")
    tools.add_argument(
        "--limit", type=_positive, default=DEFAULT_LIMIT, help=f"rows per page (default {DEFAULT_LIMIT})"
    )
    tools.add_argument("--page", type=_positive, default=1, help="page number (default 1)")
    tools.set_defaults(handler="customers.tools")

    from .budgets import add_commands as add_budget_commands  # budgets and alerts: argparse only

    add_budget_commands(sub, store, _Parser)

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
    serve.set_defaults(handler="operations.serve")
    return parser


def _billing(sub: argparse._SubParsersAction[_Parser], store: _Parser, output: _Parser) -> None:
    """Billing: ``statement``, ``margins``, ``revenue import``, ``markup``, ``reprice`` (``_cli/billing.py``)."""
    period = _Parser(add_help=False)
    period.add_argument("--period", metavar="YYYY-MM", help="a calendar month (UTC), or a day YYYY-MM-DD")
    period.add_argument("--from", dest="start", metavar="WHEN", help="start: ISO date/time (UTC) or 7d, 24h ago")
    period.add_argument("--to", dest="end", metavar="WHEN", help="end (exclusive), same forms")
    statement = sub.add_parser(
        "statement",
        parents=[store, period, output],
        help="a tenant's (or user's) statement: lines by model, markup, price, total",
        description="Line items by provider and model (requests, tokens, cost), the markup that applies, the "
        "customer's price and the total, for --period (default: this month) or --from/--to. Amounts are exact "
        "until the total, which is rounded half up to the cent; the lines' cents add up to it.",
    )
    who = statement.add_argument_group("customer (one of, or both for a user in one tenant)")
    who.add_argument("--tenant", metavar="ID", help="the tenant")
    who.add_argument("--user", metavar="ID", help="the user (across their tenants unless --tenant is given)")
    statement.set_defaults(handler="billing.statement")

    margins = sub.add_parser(
        "margins",
        parents=[store, period, output],
        help="revenue against cost per tenant or user, worst margin first",
    )
    margins.add_argument("--by", choices=("tenant", "user"), default="tenant", help="per tenant (default) or user")
    margins.add_argument("--tenant", metavar="ID", help="only this tenant (and its users' calls)")
    margins.set_defaults(handler="billing.margins")

    revenue = sub.add_parser(
        "revenue",
        parents=[store],
        help="import what customers paid (CSV, or Stripe's invoice-line export)",
        description="Import a revenue CSV: customer_id, period (YYYY-MM) or date, amount, currency (USD), with "
        "optional customer_type (tenant|user), tenant_id, id, description — or Stripe's invoice line items "
        "(id, invoice_id, amount in cents, currency, period_start, and the customer's tenant_id / user_id "
        "metadata). The whole file or nothing; importing the same file again changes nothing.",
    )
    revenue.add_argument("action", choices=("import",))
    revenue.add_argument("file", metavar="FILE", help="the CSV file")
    revenue.add_argument("--dry-run", action="store_true", help="check the file and say what would be imported")
    revenue.add_argument("--format", choices=("table", "json"), default="table", help="table (default) or json")
    revenue.set_defaults(handler="billing.revenue")

    markup = sub.add_parser(
        "markup",
        parents=[store],
        help="set, remove or list markups (per user, tenant, plan tag, or default)",
        description="A markup is a percentage added to cost on statements (20 = +20 %%). A call's markup is its "
        "user's, else its tenant's, else its plan tag's, else the default; none set is 0 %%.",
    )
    markup.add_argument("action", choices=("set", "unset", "list"))
    markup.add_argument("percent", nargs="?", metavar="PERCENT", help="for set: 20, 12.5, -10 …")
    target = markup.add_mutually_exclusive_group()
    target.add_argument("--tenant", metavar="ID", help="this tenant's markup")
    target.add_argument("--user", metavar="ID", help="this user's markup")
    target.add_argument("--plan", metavar="PLAN", help="the markup of calls tagged plan=PLAN")
    markup.add_argument("--note", default="", help="why (kept with the markup)")
    markup.add_argument("--format", choices=("table", "json"), default="table", help="table (default) or json")
    markup.set_defaults(handler="billing.markup")

    reprice = sub.add_parser(
        "reprice",
        parents=[store],
        help="recompute stored calls' costs with the current prices, and the rollups after them",
        description="Price the calls of [--from, --to) again from their stored token counts (genai-prices and "
        "--price-file / $SPANLEDGER_PRICE_FILE), rewrite those whose cost changes, rebuild the rollups of the "
        "days touched, and print before/after per tenant and user. Unpriced calls with a price now become "
        "priced; priced calls without one now are kept. --dry-run prints the same report and writes nothing. "
        "spanledger writers of the store hold their inserts meanwhile (their spools keep accepting calls).",
    )
    reprice.add_argument("--from", dest="start", metavar="WHEN", required=True, help="start: ISO date or time (UTC)")
    reprice.add_argument("--to", dest="end", metavar="WHEN", required=True, help="end (exclusive)")
    reprice.add_argument("--provider", metavar="ID", help="only this provider's calls")
    reprice.add_argument("--model", metavar="ID", help="only this model's calls")
    reprice.add_argument("--price-file", metavar="FILE", help="price rules (default: $SPANLEDGER_PRICE_FILE)")
    reprice.add_argument("--dry-run", action="store_true", help="print what would change, write nothing")
    reprice.add_argument("--top", type=_positive, default=20, help="users to list in the table (default 20)")
    reprice.add_argument("--format", choices=("table", "json"), default="table", help="table (default) or json")
    reprice.set_defaults(handler="billing.reprice")
