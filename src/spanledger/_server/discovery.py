"""uvicorn's server, plus the discovery file that lets the command line read an embedded store serve holds.

The file (:mod:`spanledger._store.served`) is written once the socket listens — a command that finds it can
connect at once — and removed when the server shuts down, before uvicorn re-raises a stopping signal.
"""

from __future__ import annotations

import socket
from typing import Any

import uvicorn

from .._store import served
from .._store.store import Store


def url_for(host: str, port: int) -> str:
    """The URL a local client reaches a server listening on ``host:port`` with (a wildcard → loopback)."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class DiscoverableServer(uvicorn.Server):
    """A ``uvicorn.Server`` that advertises the embedded store it serves while it listens."""

    def __init__(self, config: uvicorn.Config, *, store: Store) -> None:
        super().__init__(config)
        self._location = store.location if store.kind == "chdb" else None
        self._database = store.database

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self._location:
            port = self.servers[0].sockets[0].getsockname()[1]  # the real one, also for --port 0
            served.advertise(self._location, url=url_for(self.config.host, port), database=self._database)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.withdraw()
        await super().shutdown(sockets)

    def withdraw(self) -> None:
        """Remove the discovery file (idempotent; also called when ``run`` returns)."""
        if self._location:
            served.withdraw(self._location)

    def run(self, sockets: Any = None) -> None:
        try:
            super().run(sockets)
        finally:
            self.withdraw()
