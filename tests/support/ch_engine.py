"""Run what arrived over ClickHouse's HTTP interface on this process's chDB engine (for ``ch_http``).

* every URL parameter is a setting (applied with ``SET``), except the transport ones in
  :data:`TRANSPORT_PARAMS`; bound parameters (``param_<name>``) go to chDB's ``params`` as they are,
  in ClickHouse's escaped text form;
* ``INSERT INTO t (cols) FORMAT Native\\n<binary>``: the data is written to a file and loaded with
  ``INSERT INTO t (cols) FROM INFILE '<file>' FORMAT Native``;
* a statement ending in ``FORMAT x`` answers in that format; others in ``TabSeparated``, reported as a
  result set (``X-ClickHouse-Format``) only when the statement has one.

Each statement runs on a fresh chDB connection handle, so ``USE`` and ``SET`` never leak between requests.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import tempfile
import threading
import zlib
from pathlib import Path
from typing import Any

import chdb
import lz4.frame

TRANSPORT_PARAMS = frozenset(
    [
        "query",
        "database",
        "user",
        "password",
        "query_id",
        "session_id",
        "session_timeout",
        "session_check",
        "compress",
        "decompress",
        "buffer_size",
        "wait_end_of_query",
        "client_protocol_version",
        "role",
        "quota_key",
        "default_format",
        "enable_http_compression",
        "send_progress_in_http_headers",
        "http_headers_progress_interval_ms",
        "cancel_http_readonly_queries_on_client_close",
    ]
)
"""URL parameters that steer the HTTP layer rather than being ClickHouse settings."""
INSERT = re.compile(rb"\A\s*INSERT\s+INTO\s+(?P<target>.+?)\s+FORMAT\s+(?P<fmt>\w+)[ \t]*(?:\r?\n)?", re.I | re.S)
_TRAILING_FORMAT = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*\Z", re.I)
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CODE = re.compile(r"Code: (\d+)")
_STATUS_BY_CODE = {
    **dict.fromkeys((516, 497, 194), 403),
    **dict.fromkeys((60, 81, 16, 47), 404),
    **dict.fromkeys((62, 27, 36, 53, 46, 115, 456, 457, 6, 26, 117), 400),
}
RESPONSE_ENCODINGS = ("lz4", "gzip", "deflate")

Result = tuple[bytes, str | None, dict[str, str]]
"""``(body, X-ClickHouse-Format or None, X-ClickHouse-Summary)``."""


class ClickHouseError(Exception):
    """A failure to report the way ClickHouse does: ``Code: N. DB::Exception: … (NAME)``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message if "Code: " in message else f"Code: {code}. DB::Exception: {message}")
        self.code = code

    @property
    def http_status(self) -> int:
        return _STATUS_BY_CODE.get(self.code, 500)


class ChdbEngine:
    """The chDB engine at ``path`` (the one this process already uses), one request at a time."""

    def __init__(self, path: Path | str) -> None:
        self.path = os.path.realpath(path)
        self._lock = threading.Lock()
        self._tmp = tempfile.mkdtemp(prefix="ch-http-")
        self._keeper = chdb.connect(self.path)  # holds the engine open while the fixture lives
        row = self._keeper.query("SELECT version(), timezone()", "TabSeparated").bytes().decode().split("\t")
        self.version, self.timezone = row[0].strip(), row[1].strip()

    def close(self) -> None:
        self._keeper.close()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def execute(self, text: bytes, params: dict[str, str], bind: dict[str, str]) -> Result:
        """Run one statement (with any insert data after it) under the request's settings."""
        settings = {k: v for k, v in params.items() if k not in TRANSPORT_PARAMS and not k.startswith("param_")}
        insert = INSERT.match(text)
        with self._lock:
            conn = chdb.connect(self.path)
            try:
                if params.get("database"):
                    _run(conn, f"USE `{params['database'].replace('`', '``')}`", "TabSeparated")
                for name, value in settings.items():
                    if not _SETTING_NAME.match(name):
                        raise ClickHouseError(115, f"Unknown setting '{name}'. (UNKNOWN_SETTING)")
                    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
                    _run(conn, f"SET {name} = '{escaped}'", "TabSeparated")
                if insert:
                    return self._insert(conn, insert, text[insert.end() :])
                sql = text.decode("utf-8", "surrogateescape")
                fmt = _TRAILING_FORMAT.search(sql)
                if fmt:
                    result = _run(conn, sql, fmt.group(1), bind)
                    return result.bytes() or b"", fmt.group(1), _summary(result, written=False)
                result = _run(conn, sql, "TabSeparatedWithNames", bind)
                body = result.bytes() or b""
                if not body:  # no result set (DDL, SET, INSERT … VALUES): no names line either
                    return b"", None, _summary(result, written=False)
                return body[body.find(b"\n") + 1 :], "TabSeparated", _summary(result, written=False)
            finally:
                conn.close()

    def _insert(self, conn: Any, insert: re.Match[bytes], data: bytes) -> Result:
        target, fmt = insert.group("target").decode(), insert.group("fmt").decode()
        if not data:
            return b"", None, {"written_rows": "0", "written_bytes": "0"}
        fd, path = tempfile.mkstemp(dir=self._tmp, suffix=f".{fmt.lower()}")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            result = _run(conn, f"INSERT INTO {target} FROM INFILE '{path}' FORMAT {fmt}", "TabSeparated")
            return b"", None, _summary(result, written=True)
        finally:
            os.unlink(path)

    def error_body(self, error: ClickHouseError) -> bytes:
        text = str(error).strip()
        return f"{text[text.find('Code: ') :]} (version {self.version})\n".encode()


def _run(conn: Any, sql: str, fmt: str, params: dict[str, str] | None = None) -> Any:
    try:
        return conn.query(sql, fmt, params=params or {})
    except Exception as exc:  # chDB raises ChdbError / RuntimeError carrying ClickHouse's message
        match = _CODE.search(str(exc))
        raise ClickHouseError(int(match.group(1)) if match else 1001, str(exc)) from None


def _summary(result: Any, *, written: bool) -> dict[str, str]:
    rows, size = str(result.rows_read()), str(result.bytes_read())
    summary = {"read_rows": rows, "read_bytes": size, "written_rows": "0", "written_bytes": "0"}
    if written:
        summary.update(written_rows=rows, written_bytes=size)
    summary.update(total_rows_to_read="0", result_rows="0", result_bytes="0")
    summary["elapsed_ns"] = str(int(result.elapsed() * 1e9))
    return summary


def decompress(body: bytes, encoding: str) -> bytes:
    """A request body per its ``Content-Encoding`` (lz4 frame, zstd, gzip, deflate)."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding == "lz4":
        return bytes(lz4.frame.decompress(body))
    if encoding == "zstd":
        from backports import zstd  # clickhouse-connect's own zstd dependency on Python < 3.14

        return bytes(zstd.decompress(body))
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    raise ClickHouseError(48, f"Unknown HTTP Content-Encoding '{encoding}'. (NOT_IMPLEMENTED)")


def compress(body: bytes, encoding: str) -> bytes:
    """A response body in one of :data:`RESPONSE_ENCODINGS`."""
    if encoding == "lz4":
        return bytes(lz4.frame.compress(body))
    if encoding == "gzip":
        return gzip.compress(body)
    return zlib.compress(body)
