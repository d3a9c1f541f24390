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

from tests.factories import llm_span
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


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPANLEDGER_")}
    return {
        **env,
        "PYTHONPATH": str(ROOT),
        "SPANLEDGER_ADMIN_TOKEN": ADMIN_TOKEN,
        "SPANLEDGER_INGEST_TOKEN": INGEST_TOKEN,
    }


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
def _serve(store: str, port: int) -> Iterator[tuple[subprocess.Popen[str], httpx2.Client]]:
    command = [sys.executable, "-m", "spanledger", "serve", "--store", store, "--port", str(port)]
    server = subprocess.Popen(command, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
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


_WRITER = """
import sys, time
from spanledger import CostExporter
from tests.factories import llm_span
dsn, spool, first, last, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
exporter = CostExporter(dsn, spool_dir=spool, flush_interval_ms=60_000 if mode == "crash" else 200)
spans = [llm_span(n, user=f"user-{n % 6}") for n in range(first, last)]
assert exporter.export(spans).name == "SUCCESS"
print("acknowledged", flush=True)
if mode == "crash":
    time.sleep(600)  # killed before its flusher runs: the calls are only in its spool
assert exporter.force_flush(60_000)
exporter.shutdown()
print(dict(exporter.stats), flush=True)
"""


def _writer(dsn: str, spool: Path, first: int, last: int, mode: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-c", _WRITER, dsn, str(spool), str(first), str(last), mode]
    return subprocess.Popen(command, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


def test_two_writers_on_one_clickhouse_http_endpoint_count_a_redelivered_span_once(
    ch_server: ClickHouseHTTPServer, tmp_path: Path
) -> None:
    from spanledger import Store

    dsn = ch_server.dsn("t_two_writers", connect_timeout=5, send_receive_timeout=30)
    Store(dsn).close()  # the schema, created once
    try:
        # writer A acknowledges 0..60 and is SIGKILLed before it inserts anything
        a = _writer(dsn, tmp_path / "spool-a", 0, 60, "crash")
        assert a.stdout is not None and a.stdout.readline().strip() == "acknowledged"
        a.send_signal(signal.SIGKILL)
        a.communicate(timeout=30)
        # the client's retry lands on writer B (another process, another spool), overlapping 40..100
        b = _writer(dsn, tmp_path / "spool-b", 40, 100, "ok")
        _, err_b = b.communicate(timeout=120)
        assert b.returncode == 0, err_b[-2000:]
        # A restarts on its spool: it replays 0..60, of which B already stored 40..60
        a2 = _writer(dsn, tmp_path / "spool-a", 50, 70, "ok")
        out_a2, err_a2 = a2.communicate(timeout=120)
        assert a2.returncode == 0, err_a2[-2000:]
        assert "'replayed': 40" in out_a2, out_a2  # 0..40 from its spool; 40..60 were B's already
        store = Store(dsn, create=False)
        rows, distinct = store.query(
            "SELECT count(), uniqExact(trace_id, span_id) FROM t_two_writers.llm_calls"
        ).result_rows[0]
        assert (rows, distinct) == (100, 100)
        for table in ("usage_by_user_hourly", "usage_by_tenant_daily", "usage_by_user_model_daily"):
            assert store.query(f"SELECT sum(requests) FROM t_two_writers.{table}").result_rows[0][0] == 100, table
    finally:
        Store(dsn, create=False).command("DROP DATABASE IF EXISTS t_two_writers SYNC")
