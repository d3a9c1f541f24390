"""The ``spanledger`` command: parse, run the sub-command's handler, turn every error into one line.

Every error a user can cause (a bad DSN, a bad date, a bad ``--tag``, a store another process holds)
is one line on stderr, ``spanledger: error: …``, with exit code 2 for bad input and 1 for store
errors; never a traceback.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence

from .._errors import ConfigError, SpanledgerError, StoreError
from .parser import PROG, UsageError, build_parser


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
        name: str | None = getattr(args, "handler", None)
        if name is None:
            parser.print_help()
            return 0
        module, _, function = name.partition(".")
        handler: Callable[..., int] = getattr(importlib.import_module(f"{__package__}.{module}"), function)
        from .common import console

        return handler(args, console())
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
    except Exception as exc:  # our own bug: still one line (SPANLEDGER_DEBUG=1 shows the traceback)
        if os.environ.get("SPANLEDGER_DEBUG"):
            raise
        return _fail(
            f"internal error ({type(exc).__name__}: {exc}); please report it, with SPANLEDGER_DEBUG=1 output", 1
        )
