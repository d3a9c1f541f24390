"""Soak: minutes of load, a flapping store, a SIGKILL of the producer in the middle, re-sent batches and
poison spans. Prints the ledger.

    python bench/soak.py --minutes 4

Phase 1 produces LLM spans through TracerProvider + UserAttributionProcessor + BatchSpanProcessor
(CostExporter) while a thread makes the store refuse inserts every few seconds (DETACH/ATTACH of the
raw table), and is SIGKILLed halfway. Phase 2 is a new process on the same store and spool: it replays
what phase 1 left, first **re-sends random batches phase 1 had acknowledged** (what an OTLP client does
when a crash lost its response), keeps producing under the same flapping, and shuts down cleanly. Both
phases **inject a poison span every minute** (the span of issue 11: o1-pro with 9,999,999,999 tokens of
every kind, about $10.5M), which must land in the quarantine and hold nothing up.

Every span whose ``export()`` returned SUCCESS is recorded in an acknowledgement log (ids, times, user and
tenant: enough to send it again); at the end the store must hold each acknowledged span exactly once —
``lost`` = acknowledged but not stored, ``duplicates`` = rows - distinct — and the quarantine exactly the
poison spans.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

_PRODUCER = r"""
import json, os, random, resource, sys, threading, time
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult
from opentelemetry.trace import SpanContext, TraceFlags
from spanledger import CostExporter, Store, UserAttributionProcessor, attribute_to

dsn, spool, ack_path, phase, seconds, rate = sys.argv[1:7]
seconds, rate, phase = float(seconds), int(rate), int(phase)
store = Store(dsn)
exporter = CostExporter(store, spool_dir=spool, flush_interval_ms=500)
ATTRS = {"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini",
         "gen_ai.usage.input_tokens": 1200, "gen_ai.usage.cache_read.input_tokens": 1024,
         "gen_ai.usage.output_tokens": 30}
N = 9_999_999_999
POISON = {"gen_ai.provider.name": "openai", "gen_ai.request.model": "o1-pro", "gen_ai.usage.input_tokens": N,
          "gen_ai.usage.output_tokens": N, "gen_ai.usage.cache_read.input_tokens": N,
          "gen_ai.usage.cache_creation.input_tokens": N}

def rebuilt(trace_id, span_id, start, end, user, tenant, attrs=ATTRS):
    ctx = SpanContext(trace_id=trace_id, span_id=span_id, is_remote=False, trace_flags=TraceFlags(1))
    return ReadableSpan(name="chat", context=ctx, resource=Resource.create({}), start_time=start, end_time=end,
                        attributes={**attrs, "enduser.id": user, "tenant.id": tenant})

resent = 0
if phase == 2:  # a client re-sending batches the crashed process had acknowledged
    batches = [json.loads(line) for line in open(ack_path) if line.startswith("[")]
    for batch in random.Random(7).sample(batches, min(40, len(batches))):
        assert exporter.export([rebuilt(*s) for s in batch]) is SpanExportResult.SUCCESS
        resent += len(batch)
ack = open(ack_path, "a", buffering=1)
poison_log = open(ack_path + ".poison", "a", buffering=1)

class Acking:
    def __init__(self, inner): self.inner = inner
    def export(self, spans):
        result = self.inner.export(spans)
        if result is SpanExportResult.SUCCESS:
            ack.write(json.dumps([[s.context.trace_id, s.context.span_id, s.start_time, s.end_time,
                                   s.attributes["enduser.id"], s.attributes["tenant.id"]] for s in spans]) + "\n")
        return result
    def force_flush(self, timeout_millis=30000): return self.inner.force_flush(timeout_millis)
    def shutdown(self): self.inner.shutdown()

provider = TracerProvider()
provider.add_span_processor(UserAttributionProcessor())
provider.add_span_processor(BatchSpanProcessor(Acking(exporter)))
tracer = provider.get_tracer("soak")
stop = threading.Event()

def flap():
    while not stop.wait(3):
        try:
            store.command(f"DETACH TABLE {store.database}.llm_calls")
            stop.wait(1.5)
        finally:
            store.command(f"ATTACH TABLE {store.database}.llm_calls")

threading.Thread(target=flap, daemon=True).start()
produced, started, next_report, next_poison = 0, time.monotonic(), 0.0, 5.0
max_spool = max_rss = 0
while time.monotonic() - started < seconds:
    if time.monotonic() - started >= next_poison:  # one poison span a minute, straight to the exporter
        next_poison += 60
        trace_id = random.getrandbits(127) + 1
        now = time.time_ns()
        poison_log.write(f"{trace_id}\n")
        exporter.export([rebuilt(trace_id, 1, now, now + 10**9, "mallory", "tenant-x", POISON)])
    with attribute_to(user_id=f"user-{produced % 97}", tenant_id=f"tenant-{produced % 7}"):
        for _ in range(rate // 20):
            with tracer.start_as_current_span("chat gpt-4o-mini") as span:
                span.set_attributes({"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini",
                    "gen_ai.usage.input_tokens": 1200, "gen_ai.usage.cache_read.input_tokens": 1024,
                    "gen_ai.usage.output_tokens": 30})
            produced += 1
    time.sleep(0.05)
    max_spool = max(max_spool, exporter.spool.size_bytes)
    max_rss = max(max_rss, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    if time.monotonic() - started >= next_report:
        next_report += 1
        print(json.dumps({"produced": produced, "spool_bytes": exporter.spool.size_bytes, "max_spool": max_spool,
                          "rss": max_rss, "resent": resent, "stats": dict(exporter.stats)}), flush=True)
stop.set()
provider.force_flush()
exporter.force_flush(60_000)
provider.shutdown()
print(json.dumps({"produced": produced, "done": True, "max_spool": max_spool, "rss": max_rss, "resent": resent,
                  "stats": dict(exporter.stats)}), flush=True)
"""

_VERIFY = r"""
import json, sys
from pathlib import Path
from spanledger import CostExporter, Store
from spanledger._ingest import codec
from spanledger._ingest.quarantine import Quarantine
dsn, spool = sys.argv[1:3]
exporter = CostExporter(dsn, spool_dir=spool)
assert exporter.force_flush(120_000), "spool could not be drained"
exporter.shutdown()
store = Store(dsn)
rows, distinct = store.query(f"SELECT count(), uniqExact(trace_id) FROM {store.database}.llm_calls").result_rows[0]
rollup = store.query(f"SELECT sum(requests) FROM {store.database}.usage_by_user_hourly").result_rows[0][0]
ids = [r[0] for r in store.query(f"SELECT DISTINCT trace_id FROM {store.database}.llm_calls").result_rows]
q = Quarantine(Path(spool))
quarantined = [t for e in q.entries() for t in q.load(e)[codec.COLUMN_NAMES.index("trace_id")]]
print(json.dumps({"rows": rows, "distinct": distinct, "rollup_requests": int(rollup or 0), "ids": ids,
                  "quarantined": quarantined}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--rate", type=int, default=2000, help="spans per second to aim for")
    args = parser.parse_args()
    half = args.minutes * 60 / 2
    work = Path(tempfile.mkdtemp(prefix="spanledger-soak-"))
    dsn, spool, ack = f"chdb://{work / 'store'}", str(work / "spool"), work / "acked.txt"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    reports: list[dict] = []

    def run_phase(phase: int, kill_after: float | None) -> None:
        cmd = [sys.executable, "-c", _PRODUCER, dsn, spool, str(ack), str(phase), str(half), str(args.rate)]
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env) as proc:
            assert proc.stdout is not None
            if kill_after is not None:
                threading.Timer(kill_after, lambda: proc.send_signal(signal.SIGKILL)).start()
            for line in proc.stdout:
                reports.append({"phase": phase, **json.loads(line)})
            proc.wait()
            print(f"phase {phase}: exit {proc.returncode}", file=sys.stderr)

    print(
        f"soak: {args.minutes} min, ~{args.rate} spans/s, store flapping every 3 s, SIGKILL at {half:.0f} s",
        file=sys.stderr,
    )
    run_phase(1, kill_after=half * 0.9)
    run_phase(2, kill_after=None)
    verify = subprocess.run(
        [sys.executable, "-c", _VERIFY, dsn, spool], capture_output=True, text=True, env=env, check=True
    )
    final = json.loads(verify.stdout.strip().splitlines()[-1])
    acked = {span[0] for line in ack.read_text().splitlines() if line for span in json.loads(line)}
    poison = {int(x) for x in Path(str(ack) + ".poison").read_text().split()}
    quarantined = [int(x) for x in final["quarantined"]]
    stored = set(final["ids"])
    produced = sum(max((r["produced"] for r in reports if r["phase"] == p), default=0) for p in (1, 2))
    result = {
        "minutes": args.minutes,
        "spans_produced_last_report": produced,  # phase 1 reports once a second before its SIGKILL
        "spans_acknowledged": len(acked),
        "stored_rows": final["rows"],
        "duplicates": final["rows"] - final["distinct"],
        "lost": len(acked - stored),
        "resent_after_sigkill": max((r.get("resent", 0) for r in reports if r["phase"] == 2), default=0),
        "poison_spans_sent": len(poison),
        "quarantined": len(quarantined),
        "quarantine_is_the_poison": sorted(quarantined) == sorted(poison) and not (poison & stored),
        "rollup_requests": final["rollup_requests"],
        "rollup_matches_raw": final["rollup_requests"] == final["rows"],
        "max_spool_bytes": max((r.get("max_spool", 0) for r in reports), default=0),
        "max_rss_bytes": max((r.get("rss", 0) for r in reports), default=0),
        "insert_failures": sum(
            max((r["stats"].get("insert_failures", 0) for r in reports if r["phase"] == p), default=0) for p in (1, 2)
        ),
        "replayed_after_sigkill": max((r["stats"].get("replayed", 0) for r in reports if r["phase"] == 2), default=0),
        "peak_rss_parent_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }
    print(json.dumps(result, indent=2))
    (Path(__file__).parent / "soak_results.json").write_text(json.dumps(result, indent=2) + "\n")
    ok = result["lost"] == 0 and result["duplicates"] == 0 and result["rollup_matches_raw"]
    print(
        f"soak: {result['spans_acknowledged']:,} acknowledged, {result['lost']} lost, {result['duplicates']} "
        f"duplicates, {result['quarantined']} quarantined (of {result['poison_spans_sent']} poison spans), "
        f"{result['resent_after_sigkill']:,} re-sent after the SIGKILL",
        file=sys.stderr,
    )
    return 0 if ok and result["quarantine_is_the_poison"] else 1


if __name__ == "__main__":
    sys.exit(main())
