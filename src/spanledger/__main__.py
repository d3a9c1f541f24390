"""``python -m spanledger``: the same command line as ``spanledger``."""

from __future__ import annotations

import sys

from ._cli.main import main

if __name__ == "__main__":
    sys.exit(main())
