"""What the commands share: the console, the window and tags asked for, opening the store — or, while
``spanledger serve`` holds an embedded store, reading through its API.

The store's engine (chDB, clickhouse-connect) is imported only by the commands that open it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from rich.console import Console

from .._config import DEFAULT_STORE, env_str
from .._errors import ConfigError, SpanledgerError, StoreLockedError
from .._model.rows import NO_TENANT_LABEL, UNATTRIBUTED_LABEL
from .._present.numbers import plural
from .._present.tables import TimeRange
from .._query.timebound import parse_bound
from .._store import served as _served
from .._store.dsn import parse as parse_dsn

if TYPE_CHECKING:
    from .._query.ledger import Ledger
    from .._store.store import Store
    from .remote import RemoteLedger

TOKEN_ENV = "SPANLEDGER_TOKEN"


def console() -> Console:
    # A table piped to a file or a pager is not limited by a terminal: give it room.
    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(width=120)
    return console


def window(args: argparse.Namespace) -> TimeRange:
    now = datetime.now(UTC)
    return TimeRange(parse_bound(args.start, now=now), parse_bound(args.end, now=now))


def tags(args: argparse.Namespace) -> dict[str, str]:
    found: dict[str, str] = {}
    for key, value in args.tag:
        if key in found and found[key] != value:
            raise ConfigError(f"--tag {key} given twice ({found[key]!r} and {value!r}); a call has one value per tag")
        found[key] = value
    return found


def user_id(text: str) -> str:
    """The stored id for one given on the command line: its keyed hash in a pseudonymized ledger."""
    if text.strip() in ("", UNATTRIBUTED_LABEL):
        return ""
    from .._privacy.pseudonym import lookup_id

    return lookup_id(text)


def tenant_id(text: str | None) -> str | None:
    """``--tenant``: ``None`` when absent, ``""`` for "(no tenant)" (the calls that carried none)."""
    if text is None:
        return None
    return "" if text.strip() in ("", NO_TENANT_LABEL) else text


def open_store(dsn: str | None, *, existing: bool = False, held: str = "stop it first") -> Store:
    """Open the store (``existing``: only one that is there — a question creates nothing); on failure chDB's
    own complaint on stderr is dropped, our one-line error says it. An embedded store a running ``spanledger
    serve`` holds is refused at once, naming the server and saying what to do instead (``held``)."""
    dsn = env_str("SPANLEDGER_STORE", dsn, DEFAULT_STORE)
    server = held_by(dsn)
    if server is not None:
        raise StoreLockedError(
            f"the embedded store {parse_dsn(dsn)[1]} is held by spanledger serve at {server.url} (pid {server.pid}), "
            f"and this command needs the store itself: {held}"
        )
    return _open(dsn, existing=existing)


def _open(dsn: str, *, existing: bool) -> Store:
    from .._store.store import Store

    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:
        return Store(dsn, existing=existing)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            store = Store(dsn, existing=existing)
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


def local_ledger(args: argparse.Namespace, *, held: str) -> Ledger:
    """The store's own ledger, for a question the server's API is not read back from (``held``: what to do
    while ``spanledger serve`` holds the store)."""
    from .._query.ledger import Ledger

    return Ledger(open_store(args.store, existing=True, held=held))


def ledger(args: argparse.Namespace) -> Ledger | RemoteLedger:
    """What answers a question: ``--server``'s API; else the running ``spanledger serve`` that holds the
    embedded store, if there is one (its API); else the store itself (a question never creates one)."""
    if args.server:
        from .remote import RemoteLedger

        if args.store is not None:
            raise ConfigError("give --store or --server, not both: the server reads its own store")
        return RemoteLedger(args.server, token=args.token or os.environ.get(TOKEN_ENV))
    dsn = env_str("SPANLEDGER_STORE", args.store, DEFAULT_STORE)
    server = serving(dsn, token=args.token)
    if server is not None:
        print(f"spanledger: reading through the running spanledger serve at {server.url}", file=sys.stderr)
        return server
    from .._query.ledger import Ledger

    try:
        with _hidden("pyarrow"):
            return Ledger(_open(dsn, existing=True))
    except (ImportError, SpanledgerError) as exc:
        if "pyarrow" not in str(exc):
            raise
        return Ledger(_open(dsn, existing=True))  # a chDB that needs it after all


def serving(dsn: str, *, token: str | None = None) -> RemoteLedger | None:
    """The API of the running ``spanledger serve`` that holds the embedded store ``dsn``, when one answers.

    Its token: ``token`` (``--token``), else ``SPANLEDGER_TOKEN``, else ``SPANLEDGER_ADMIN_TOKEN`` (whoever
    started the server on this machine with it may read through it)."""
    held = held_by(dsn)
    if held is None:
        return None
    from .remote import RemoteLedger

    _, location, database, _ = parse_dsn(dsn)
    if held.database != database:
        raise StoreLockedError(
            f"the embedded store {location} is held by spanledger serve at {held.url} (pid {held.pid}), which "
            f"serves its database {held.database!r}, not {database!r}: ask for that one, or stop the server"
        )
    token = token or os.environ.get(TOKEN_ENV) or os.environ.get("SPANLEDGER_ADMIN_TOKEN")
    return RemoteLedger(held.url, token=token)


def held_by(dsn: str) -> _served.Served | None:
    """The running ``spanledger serve`` holding the embedded store ``dsn``: its discovery file names a live
    process that answers at the URL written there (a pid alone may have been reused)."""
    kind, location, _, _ = parse_dsn(dsn)
    held = _served.find(location) if kind == "chdb" and location else None
    if held is None:
        return None
    from .remote import RemoteLedger

    try:
        RemoteLedger(held.url, timeout=5).get("/healthz")
    except SpanledgerError:
        return None
    return held


@contextlib.contextmanager
def _hidden(module: str) -> Iterator[None]:
    """Make ``import module`` fail meanwhile, unless something imported it already.

    chDB imports pyarrow (and numpy) when it opens a store, for the Arrow results spanledger never asks for
    (clickhouse-connect reads chDB's Native format): a third of a short question's time. The command line owns
    its process, so it may hide it (``sys.modules[name] = None`` is how Python spells "cannot be imported")."""
    if module in sys.modules:
        yield
        return
    sys.modules[module] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        if module in sys.modules and sys.modules[module] is None:
            del sys.modules[module]


def unpriced_note(console: Console, unpriced: int, *, where: str = "above") -> None:
    if unpriced:
        console.print(
            f"[yellow]{plural(unpriced, 'call')} {where} {'is' if unpriced == 1 else 'are'} unpriced[/] "
            "(a model with no known price): counted in "
            "requests and tokens, not in cost. Give it a price with SPANLEDGER_PRICE_FILE."
        )
