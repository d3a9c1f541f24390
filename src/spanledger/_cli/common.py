"""What the commands share: the console, the window and tags asked for, opening the store."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from datetime import UTC, datetime

from rich.console import Console

from .._errors import ConfigError
from .._model.rows import UNATTRIBUTED_LABEL
from .._present.numbers import count
from .._present.tables import TimeRange
from .._query.ledger import Ledger
from .._query.timebound import parse_bound
from .._store.store import Store


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


def open_store(dsn: str | None, *, existing: bool = False) -> Store:
    """Open the store (``existing``: only one that is there — a question creates nothing); on failure chDB's
    own complaint on stderr is dropped, our one-line error says it."""
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


def ledger(args: argparse.Namespace) -> Ledger:
    """The ledger of an existing store (a question never creates one)."""
    return Ledger(open_store(args.store, existing=True))


def unpriced_note(console: Console, unpriced: int, *, where: str = "above") -> None:
    if unpriced:
        console.print(
            f"[yellow]{count(unpriced)} calls {where} are unpriced[/] (a model with no known price): counted in "
            "requests and tokens, not in cost. Give it a price with SPANLEDGER_PRICE_FILE."
        )
