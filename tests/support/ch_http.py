"""A loopback endpoint speaking ClickHouse's HTTP interface, executed by this process's real chDB engine.

It implements what ``clickhouse-connect``'s HTTP client sends (execution itself is in ``ch_engine``):

* ``GET /ping`` → ``Ok.``;
* the statement in the ``query`` URL parameter, the body, or both (ClickHouse joins them with a newline),
  or in ``multipart/form-data`` fields when the bound parameters are too long for a URL;
* bodies compressed with ``Content-Encoding`` lz4 (frame), zstd, gzip or deflate, sent with
  ``Content-Length`` or ``Transfer-Encoding: chunked``; responses compressed per ``Accept-Encoding``
  unless ``enable_http_compression=0``;
* HTTP basic auth, ``X-ClickHouse-User`` / ``X-ClickHouse-Key`` or ``user`` / ``password`` parameters;
* results with ``X-ClickHouse-Format``, ``-Summary``, ``-Query-Id`` and ``-Timezone`` headers; errors as
  ClickHouse sends them: status 400/403/404/500, body ``Code: N. DB::Exception: … (NAME) (version …)``
  and ``X-ClickHouse-Exception-Code: N``.

Sessions (``session_id``) are not emulated. Faults can be switched on and off while the server runs.
"""

from __future__ import annotations

import contextlib
import email.parser
import email.policy
import json
import socket
import struct
import threading
import uuid
from base64 import b64decode
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from tests.support.ch_engine import INSERT, RESPONSE_ENCODINGS, ChdbEngine, ClickHouseError, compress, decompress

_CONTENT_TYPES = {"Native": "application/octet-stream", "JSON": "application/json; charset=UTF-8"}


@dataclass
class SeenRequest:
    """One request as the server received it (for tests and for debugging the client)."""

    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    statement: str = ""
    """The first 300 characters of the statement text (binary insert data left out)."""
    body_bytes: int = 0
    fault: str = ""
    status: int = 0


@dataclass
class _Faults:
    refusing: bool = False
    kind: str = ""
    """``503``, ``reset`` or ``stall`` (empty: none)."""
    left: int | None = None
    execute: bool = True
    inserts_only: bool = False
    """Only INSERT statements meet the fault; queries (a look-up before an insert) pass."""
    release: threading.Event = field(default_factory=threading.Event)


class ClickHouseHTTPServer:
    """Serve ClickHouse's HTTP interface on 127.0.0.1 (random port) from the chDB engine at ``chdb_path``.

    Args:
        chdb_path: The chDB directory this process already uses (one per process).
        user: Accepted user name (HTTP basic auth, ``X-ClickHouse-User`` or ``user=``).
        password: Accepted password; anything else is ``AUTHENTICATION_FAILED``.
    """

    def __init__(self, chdb_path: Path | str, *, user: str = "default", password: str = "") -> None:
        self.chdb_path = chdb_path
        self.user = user
        self.password = password
        self.host = "127.0.0.1"
        self.port = 0
        self.requests: list[SeenRequest] = []
        self._faults = _Faults()
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._placeholder: socket.socket | None = None
        self.engine: ChdbEngine | None = None

    # --- life cycle ---------------------------------------------------------------------------------
    def start(self) -> ClickHouseHTTPServer:
        self.engine = ChdbEngine(self.chdb_path)
        self._listen()
        return self

    def close(self) -> None:
        self.heal()
        self._stop_listening()
        if self.engine is not None:
            self.engine.close()
            self.engine = None

    def __enter__(self) -> ClickHouseHTTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _listen(self) -> None:
        self._httpd = _Server((self.host, self.port), _Handler, owner=self)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="ch-http", daemon=True
        )
        self._thread.start()

    def _stop_listening(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._lock:
            open_connections = list(self._connections)
        for conn in open_connections:  # pooled keep-alive connections see the server go away too
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def dsn(self, database: str, **query: object) -> str:
        """A ``spanledger.Store`` DSN for ``database`` on this server (``query`` e.g. ``send_receive_timeout``)."""
        auth = f"{quote(self.user, safe='')}:{quote(self.password, safe='')}@"
        suffix = f"?{urlencode(query)}" if query else ""
        return f"http://{auth}{self.host}:{self.port}/{database}{suffix}"

    # --- faults -------------------------------------------------------------------------------------
    def refuse_connections(self) -> None:
        """Close the port (keeping it reserved): connections are refused until :meth:`heal`."""
        with self._lock:
            if self._faults.refusing:
                return
            self._faults.refusing = True
        self._stop_listening()
        placeholder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        placeholder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        placeholder.bind((self.host, self.port))  # bound but not listening: connect() gets ECONNREFUSED
        self._placeholder = placeholder

    def respond_503(self, times: int | None = None) -> None:
        """Answer the next ``times`` requests (``None``: all until :meth:`heal`) with 503, not executing them."""
        self._arm("503", times, execute=False)

    def reset_responses(self, times: int | None = None, *, execute: bool = True, inserts_only: bool = False) -> None:
        """Reset the connection half-way through the response (after executing the statement by default)."""
        self._arm("reset", times, execute=execute, inserts_only=inserts_only)

    def stall_responses(self, times: int | None = None, *, execute: bool = True, inserts_only: bool = False) -> None:
        """Hold responses until :meth:`heal` (past any client timeout); the statement still runs by default."""
        self._arm("stall", times, execute=execute, inserts_only=inserts_only)

    def _arm(self, kind: str, times: int | None, *, execute: bool, inserts_only: bool = False) -> None:
        with self._lock:
            self._faults.release.set()
            self._faults = _Faults(
                refusing=self._faults.refusing, kind=kind, left=times, execute=execute, inserts_only=inserts_only
            )

    def heal(self) -> None:
        """End every fault: reopen the port, release stalled responses, answer normally."""
        with self._lock:
            refusing = self._faults.refusing
            self._faults.release.set()
            self._faults = _Faults()
        if refusing:
            if self._placeholder is not None:
                self._placeholder.close()
                self._placeholder = None
            self._listen()

    def _take_fault(self, insert: bool = True) -> tuple[str, bool, threading.Event]:
        with self._lock:
            faults = self._faults
            if faults.refusing:
                return "refused", False, faults.release
            if not faults.kind or (faults.inserts_only and not insert):
                return "", True, faults.release
            kind = faults.kind
            if faults.left is not None:
                faults.left -= 1
                if faults.left <= 0:
                    self._faults = _Faults()
            return kind, faults.execute, faults.release

    @property
    def request_count(self) -> int:
        """Requests received (``/ping`` included), whatever happened to them."""
        with self._lock:
            return len(self.requests)

    def _record(self, seen: SeenRequest) -> None:
        with self._lock:
            self.requests.append(seen)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], *, owner: Any) -> None:
        self.owner: ClickHouseHTTPServer = owner
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.owner._lock:
            self.owner._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.owner._lock:
            self.owner._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        return None  # a client that went away mid-response is expected here


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ClickHouse"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        owner = self.server.owner
        assert owner.engine is not None
        url = urlsplit(self.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        body = self._read_body()
        seen = SeenRequest(self.command, url.path, dict(params), dict(self.headers.items()), body_bytes=len(body))
        owner._record(seen)
        try:  # (the body may be compressed: read the statement as the server would)
            is_insert = bool(INSERT.match(self._statement(params, body)[0]))
        except Exception:
            is_insert = False
        fault, execute, release = owner._take_fault(insert=is_insert)
        seen.fault = fault
        if fault == "refused":
            self._reset()
            return
        if url.path.rstrip("/") == "/ping":
            self._respond(seen, 200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"}, fault, release)
            return
        if fault == "503":
            error = ClickHouseError(202, "Too many simultaneous queries. (TOO_MANY_SIMULTANEOUS_QUERIES)")
            self._error(seen, error, 503, "", release)
            return
        if not execute:  # reset or stall without running the statement
            if fault == "stall":
                release.wait()
            self._reset()
            return
        try:
            if url.path not in ("", "/"):
                raise ClickHouseError(0, f"There is no handle {url.path}. (NOT_FOUND_HANDLER)")
            self._authenticate(params)
            text, bind = self._statement(params, body)
            seen.statement = text[: text.find(b"\n")].decode("utf-8", "replace")[:300] if INSERT.match(text) else ""
            seen.statement = seen.statement or text.decode("utf-8", "replace")[:300]
            result, fmt, summary = owner.engine.execute(text, params, bind)
        except ClickHouseError as exc:
            self._error(seen, exc, exc.http_status, fault, release)
            return
        headers = {
            "Content-Type": _CONTENT_TYPES.get(fmt or "", "text/tab-separated-values; charset=UTF-8"),
            "X-ClickHouse-Server-Display-Name": "spanledger-test-fixture",
            "X-ClickHouse-Query-Id": params.get("query_id") or str(uuid.uuid4()),
            "X-ClickHouse-Timezone": owner.engine.timezone,
            "X-ClickHouse-Summary": json.dumps(summary, separators=(",", ":")),
        }
        if fmt:
            headers["X-ClickHouse-Format"] = fmt
        wanted = [e.strip() for e in self.headers.get("Accept-Encoding", "").split(",")]
        encoding = next((e for e in wanted if e in RESPONSE_ENCODINGS), None)
        if params.get("enable_http_compression", "1") != "0" and encoding and result:
            result = compress(result, encoding)
            headers["Content-Encoding"] = encoding
        self._respond(seen, 200, result, headers, fault, release)

    def _authenticate(self, params: dict[str, str]) -> None:
        owner = self.server.owner
        user, password = params.get("user", "default"), params.get("password", "")
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            user, _, password = b64decode(auth[6:]).decode().partition(":")
        user = self.headers.get("X-ClickHouse-User", user)
        password = self.headers.get("X-ClickHouse-Key", password)
        if (user, password) != (owner.user, owner.password):
            raise ClickHouseError(
                516,
                f"{user}: Authentication failed: password is incorrect, or there is no "
                "user with such name. (AUTHENTICATION_FAILED)",
            )

    def _statement(self, params: dict[str, str], body: bytes) -> tuple[bytes, dict[str, str]]:
        """``(statement text with any insert data, bound parameters)`` from URL, form fields and body."""
        body = decompress(body, self.headers.get("Content-Encoding", ""))
        fields = dict(params)
        content_type = self.headers.get("Content-Type", "")
        if content_type.startswith("multipart/form-data"):
            message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                f"Content-Type: {content_type}\r\n\r\n".encode() + body
            )
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                if isinstance(name, str):
                    fields[name] = part.get_payload(decode=True).decode()
            body = b""
        query = fields.get("query", "").encode()
        text = query + b"\n" + body if query and body else query or body
        bind = {k[len("param_") :]: v for k, v in fields.items() if k.startswith("param_")}
        return text, bind

    def _error(
        self, seen: SeenRequest, exc: ClickHouseError, status: int, fault: str, release: threading.Event
    ) -> None:
        headers = {
            "Content-Type": "text/plain; charset=UTF-8",
            "X-ClickHouse-Exception-Code": str(exc.code),
            "X-ClickHouse-Server-Display-Name": "spanledger-test-fixture",
        }
        assert self.server.owner.engine is not None
        self._respond(seen, status, self.server.owner.engine.error_body(exc), headers, fault, release)

    def _respond(
        self,
        seen: SeenRequest,
        status: int,
        body: bytes,
        headers: dict[str, str],
        fault: str,
        release: threading.Event,
    ) -> None:
        seen.status = status
        if fault == "stall":
            release.wait()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if fault == "reset":  # promise more than is sent, then cut the connection with a RST
            self.send_header("Content-Length", str(len(body) + 1024))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self._reset()
            return
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Keep-Alive", "timeout=10")
        self.end_headers()
        self.wfile.write(body)

    def _reset(self) -> None:
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        self.close_connection = True
