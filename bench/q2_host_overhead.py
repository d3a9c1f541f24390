"""Q2: end-to-end overhead on the host — spans/s a loop can create and end.

Ours: ``TracerProvider`` + ``UserAttributionProcessor`` + ``BatchSpanProcessor(CostExporter(chdb))`` with
the SDK's default batch settings. Baseline: the same loop with no processor of ours and
``BatchSpanProcessor`` around a no-op exporter. The loop runs inside ``attribute_to(user, tenant, plan,
feature)`` (set once, as at a request boundary) and makes LLM client spans with the start and end
attributes the OpenAI instrumentation writes. The clock covers only the loop; afterwards
``force_flush()`` drains the queue and the script reports how many of the spans were stored, because the
SDK's ``BatchSpanProcessor`` drops spans when its queue (2,048) is full rather than block the host.

For reference, the same loop also runs with the stock ``OTLPSpanExporter`` (HTTP/protobuf) sending to a
sink in another process that answers 200 at once: what exporting to ``spanledger serve`` or a Collector
costs the host, and a measure of what any exporter that does real work in the host's Python costs it.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import urllib.request
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

from _common import Timer, emit, parse_args, round_robin, row
from _datagen import Population, SpanFactory
from spanledger import CostExporter, Store, UserAttributionProcessor, attribute_to


class NoopExporter(SpanExporter):
    def __init__(self) -> None:
        self.received = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.received += len(spans)
        return SpanExportResult.SUCCESS


# An OTLP/HTTP sink in its own process (so it does not take the host's GIL): counts the spans of each
# body, answers 200 with an empty ExportTraceServiceResponse, tells the count on GET, prints its port.
SINK = """
import http.server
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
received = 0
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        global received
        req = ExportTraceServiceRequest.FromString(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        received += sum(len(s.spans) for r in req.resource_spans for s in r.scope_spans)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()
    def do_GET(self):
        body = str(received).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"""


def extra_args(parser: object) -> None:
    parser.add_argument("--workdir", type=Path, default=Path.cwd())  # type: ignore[attr-defined]


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], extra_args)
    n = 5_000 if args.quick else 30_000
    repeats = 3 if args.quick else 5
    # the SDK logs "Queue full, dropping Span." (rate-limited); keep the console readable, same for both sides
    logging.getLogger("opentelemetry.sdk._shared_internal").setLevel(logging.ERROR)
    dsn = f"chdb://{args.workdir / 'chdb'}?database=" + "{db}"
    Store(dsn.format(db="warmup"))
    pop = Population()
    work = list(SpanFactory(pop).attributes(1_000))
    for _u, _f, _start, end_attrs, _e in work:
        end_attrs.pop("gen_ai.response.id", None)  # set per span below: the exporter de-duplicates by response id
    tenant = int(pop.user_tenant[0])
    scope = dict(
        user_id=pop.user_names[0], tenant_id=pop.tenant_names[tenant], plan=pop.tenant_plan[tenant], feature="chat"
    )
    delivered: dict[str, list[float]] = {"ours": [], "baseline": [], "otlp": []}

    runs = iter(range(1_000_000))

    def loop(provider: TracerProvider) -> float:
        tracer = provider.get_tracer("bench")
        run = next(runs)
        with attribute_to(**scope), Timer() as t:
            for i in range(n):
                _u, _f, start, end, _e = work[i % 1_000]
                span = tracer.start_span("chat", kind=SpanKind.CLIENT, attributes=start)
                span.set_attributes(end)
                span.set_attribute("gen_ai.response.id", f"chatcmpl-{run}-{i}")
                span.end()
        return n / t.seconds

    def ours(i: int) -> float:
        store = Store(dsn.format(db=f"ours_{os.getpid()}_{i}"))  # fresh even in a reused --workdir
        exporter = CostExporter(store=store)
        provider = TracerProvider()
        provider.add_span_processor(UserAttributionProcessor())
        provider.add_span_processor(BatchSpanProcessor(exporter))
        rate = loop(provider)
        provider.force_flush()
        provider.shutdown()
        stored = store.query(f"SELECT count() FROM {store.database}.llm_calls").result_rows[0][0]
        delivered["ours"].append(100 * stored / n)
        return rate

    def baseline(_i: int) -> float:
        exporter = NoopExporter()
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(exporter))
        rate = loop(provider)
        provider.force_flush()
        provider.shutdown()
        delivered["baseline"].append(100 * exporter.received / n)
        return rate

    sink = subprocess.Popen([sys.executable, "-c", SINK], stdout=subprocess.PIPE, text=True)
    try:
        assert sink.stdout is not None
        endpoint = f"http://127.0.0.1:{sink.stdout.readline().strip()}/v1/traces"

        def sink_count() -> int:
            with urllib.request.urlopen(endpoint) as resp:
                return int(resp.read())

        def otlp(_i: int) -> float:
            before = sink_count()
            provider = TracerProvider()
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
            rate = loop(provider)
            provider.force_flush()
            provider.shutdown()
            delivered["otlp"].append(100 * (sink_count() - before) / n)
            return rate

        mine, theirs, stock = round_robin(repeats, ours, baseline, otlp)
    finally:
        sink.terminate()
        sink.wait()
    ratio = [a / b for a, b in zip(mine, theirs, strict=True)]
    stock_ratio = [a / b for a, b in zip(stock, theirs, strict=True)]
    med = sorted(ratio)[len(ratio) // 2]
    rows = [
        row(
            f"{n:,} LLM spans in a tight loop",
            "spans/s",
            mine,
            theirs,
            ratio,
            ratio_meaning="our rate / baseline rate (higher is better)",
            target="≥ 0.8×",
            met=med >= 0.8,
        ),
        row(
            "spans that reached the exporter and were stored / received",
            "% of created",
            delivered["ours"],
            delivered["baseline"],
            target="— (BatchSpanProcessor drops when its queue is full)",
        ),
        row(
            "reference: spans the OTLP sink received / baseline received",
            "% of created",
            delivered["otlp"],
            delivered["baseline"],
            target="—",
        ),
        row(
            "reference: stock OTLPSpanExporter (HTTP/protobuf) to a sink process, same loop",
            "spans/s",
            stock,
            theirs,
            stock_ratio,
            ratio_meaning="its rate / baseline rate",
            target="— (context: the cost of exporting at all)",
        ),
    ]
    emit(
        args,
        {
            "question": 2,
            "title": "End-to-end overhead on the host",
            "baseline": "same loop, no UserAttributionProcessor, BatchSpanProcessor(no-op exporter)",
            "target": "≥ 0.8×",
            "method": (
                f"{n:,} spans per repeat, {repeats} repeats, the three variants in rotating order; default "
                "BatchSpanProcessor settings (queue 2048, batch 512, 5 s delay); ours stores into a fresh chDB "
                "database per repeat; the reference rows run BatchSpanProcessor(OTLPSpanExporter) to a sink "
                "process that counts the spans it receives"
            ),
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
