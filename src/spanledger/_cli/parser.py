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
    demo.set_defaults(handler="operations.demo")

    overview = sub.add_parser(
        "overview", parents=[store, window, tenant, tags], help="total spend, top users and tenants, cost per day"
    )
    overview.add_argument("--top", type=_positive, default=10, help="top users and tenants to show (default 10)")
    overview.add_argument("--format", choices=("table", "json"), default="table", help="table (default) or json")
    overview.set_defaults(handler="reports.overview")

    users = sub.add_parser("users", parents=[store, window, tenant, tags, listing, output], help="users ranked by cost")
    users.set_defaults(handler="reports.ranked")

    user = sub.add_parser("user", parents=[store, window, tenant, output], help="one user: models, days, recent calls")
    user.add_argument("user_id", metavar="ID", help=f"the user id; {UNATTRIBUTED_LABEL!r} or '' for calls with no user")
    user.add_argument("--calls", type=int, default=10, help="recent calls to show (default 10; 0 for none)")
    user.set_defaults(handler="reports.user")

    tenants = sub.add_parser("tenants", parents=[store, window, tags, listing, output], help="tenants ranked by cost")
    tenants.set_defaults(handler="reports.ranked")

    daily = sub.add_parser("daily", parents=[store, window, tenant, tags, output], help="cost per UTC day")
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
