"""A span delivered again after a crash is counted once: ``spanledger serve`` SIGKILLed and restarted while
its client re-sends, and two writer processes sharing one ClickHouse-HTTP endpoint."""

from __future__ import annotations

import base64
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
import pytest
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan

from spanledger.testing import llm_span
from tests.integration.server_support import ADMIN_TOKEN, INGEST_TOKEN
from tests.support.ch_http import ClickHouseHTTPServer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BATCHES, PER_BATCH, RESENT = 12, 25, 5
ENCODINGS = [("protobuf", False), ("json", False), ("protobuf", True), ("json", True)]

_COUNT = """
import json, sys
from spanledger import Store
from spanledger._store.schema import ROLLUP_TABLES
store = Store(sys.argv[1])
db = store.database
rows, distinct, cost = store.query(
    f"SELECT count(), uniqExact(trace_id, span_id), sum(ifNull(cost, 0)) FROM {db}.llm_calls").result_rows[0]
rollups = {t: int(store.query(f"SELECT sum(requests) FROM {db}.{t}").result_rows[0][0] or 0) for t in ROLLUP_TABLES}
print(json.dumps({"rows": rows, "distinct": distinct, "cost": str(cost), "rollups": rollups}))
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPANLEDGER_")}
    tokens = {"SPANLEDGER_ADMIN_TOKEN": ADMIN_TOKEN, "SPANLEDGER_INGEST_TOKEN": INGEST_TOKEN}
    return {**env, "PYTHONPATH": str(ROOT), **tokens, **extra}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _count(dsn: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", _COUNT, dsn], env=_env(), capture_output=True, text=True, timeout=120, check=True
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _batch(b: int) -> list[ReadableSpan]:
    """Batch ``b``: PER_BATCH calls with their own ids, a minute apart per batch, from six users."""
    base = b * PER_BATCH
    return [llm_span(base + i, user=f"user-{(base + i) % 6}", start_ns=None) for i in range(PER_BATCH)]


def _body(spans: list[ReadableSpan], encoding: str, compress: bool) -> tuple[bytes, dict[str, str]]:
    request = encode_spans(spans)
    if encoding == "protobuf":
        body, kind = request.SerializeToString(), "application/x-protobuf"
    else:
        doc = json_format.MessageToDict(request, use_integers_for_enums=True)
        for rs in doc["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                for span in ss["spans"]:
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if key in span:
                            span[key] = base64.b64decode(span[key]).hex()
        body, kind = json.dumps(doc).encode(), "application/json"
    headers = {"Content-Type": kind, "Authorization": f"Bearer {INGEST_TOKEN}"}
    if compress:
        body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
    return body, headers


@contextmanager
def _serve(
    store: str, port: int, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[str], httpx2.Client]]:
    command = [sys.executable, "-m", "spanledger", "serve", "--store", store, "--port", str(port)]
    server = subprocess.Popen(
        command, env=_env(**(env or {})), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        with httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            deadline = time.monotonic() + 60
            while True:  # start-up, not something under test
                try:
                    if http.get("/healthz").status_code == 200:
                        break
                except httpx2.TransportError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"spanledger serve did not start: {server.communicate()[1][-2000:]}")
                time.sleep(0.1)
            yield server, http
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
        server.communicate(timeout=60)


def test_resent_batches_after_sigkill_and_restart_are_counted_once(tmp_path: Path) -> None:
    store, port = f"chdb://{tmp_path / 'ledger'}", _free_port()
    sent: list[tuple[bytes, dict[str, str]]] = []
    with _serve(store, port) as (server, http):
        for b in range(BATCHES):
            body, headers = _body(_batch(b), *ENCODINGS[b % len(ENCODINGS)])
            response = http.post("/v1/traces", content=body, headers=headers)
            assert (response.status_code, response.content) in ((200, b""), (200, b"{}")), response.text
            sent.append((body, headers))
        server.send_signal(signal.SIGKILL)  # acknowledged, some of it still only in the spool
        server.wait(timeout=30)
    with _serve(store, port) as (_server, http):
        # the client re-sends its last batches, as an OTLP exporter does when a crash lost the response;
        # the last four cover protobuf and JSON, gzip and not
        for body, headers in sent[-RESENT:] + sent[-1:]:
            assert http.post("/v1/traces", content=body, headers=headers).status_code == 200
    counted = _count(store)
    calls = BATCHES * PER_BATCH
    assert (counted["rows"], counted["distinct"]) == (calls, calls)
    assert counted["rollups"] == {table: calls for table in counted["rollups"]}  # type: ignore[union-attr]


def test_two_servers_on_one_clickhouse_http_endpoint_count_a_redelivered_span_once(
    ch_server: ClickHouseHTTPServer, tmp_path: Path
) -> None:
    from spanledger import Store

    dsn = ch_server.dsn("t_two_writers", connect_timeout=5, send_receive_timeout=30)
    Store(dsn).close()  # the schema, created once
    first, overlap = (
        _body([s for b in (0, 1) for s in _batch(b)], "protobuf", False),
        _body([s for b in (1, 2) for s in _batch(b)], "json", True),
    )
    try:
        slow = {"SPANLEDGER_SPOOL_DIR": str(tmp_path / "spool-a"), "SPANLEDGER_FLUSH_INTERVAL_MS": "600000"}
        with _serve(dsn, _free_port(), env=slow) as (a, http):
            # server A acknowledges batches 0 and 1, and is SIGKILLed before it inserts anything
            assert http.post("/v1/traces", content=first[0], headers=first[1]).status_code == 200
            a.send_signal(signal.SIGKILL)
            a.wait(timeout=30)
        # the client's retry reaches server B (another process, another spool), with batch 2 beside batch 1
        with _serve(dsn, _free_port(), env={"SPANLEDGER_SPOOL_DIR": str(tmp_path / "spool-b")}) as (_b, http):
            assert http.post("/v1/traces", content=overlap[0], headers=overlap[1]).status_code == 200
        # A restarts on its spool: it replays batches 0 and 1, of which B already stored batch 1
        with _serve(dsn, _free_port(), env={"SPANLEDGER_SPOOL_DIR": str(tmp_path / "spool-a")}):
            pass  # it adopts the spool at start-up and drains it at shutdown (SIGTERM)
        # every call once: batch 0 only A ever had, batch 2 only B, batch 1 both
        store = Store(dsn, create=False)
        calls = 3 * PER_BATCH
        rows, distinct = store.query(
            "SELECT count(), uniqExact(trace_id, span_id) FROM t_two_writers.llm_calls"
        ).result_rows[0]
        assert (rows, distinct) == (calls, calls)
        for table in ("usage_by_user_hourly", "usage_by_tenant_daily", "usage_by_user_model_daily"):
            assert store.query(f"SELECT sum(requests) FROM t_two_writers.{table}").result_rows[0][0] == calls, table
    finally:
        Store(dsn, create=False).command("DROP DATABASE IF EXISTS t_two_writers SYNC")
