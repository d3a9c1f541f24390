"""Q8: memory — RSS of the host process while spans are exported at a high rate, and with the store down.

Three fresh processes (each with its own working directory), each running the same span loop for the
same time: ``TracerProvider`` + ``UserAttributionProcessor`` + ``BatchSpanProcessor`` (SDK defaults) around

* ``noop`` — a no-op exporter (the baseline: the same process with no exporter of ours);
* ``store`` — ``CostExporter`` into embedded chDB in the working directory;
* ``down`` — ``CostExporter`` pointed at ``http://127.0.0.1:<closed port>`` (the store is down).

The loop asks for 100,000 spans/s (paced every 10 ms) and reports the rate it reached: a single Python
thread creating SDK spans cannot reach 100k/s, so the figure says what it did reach. RSS is read from
``/proc/self/status`` every 0.5 s. "Flat after warm-up" is judged on the samples after the first sixth
of the run: the growth from the end of warm-up to the end, and a least-squares slope in MB/min.
"""

from __future__ import annotations

import inspect
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import dir_bytes, emit, parse_args, row, rss_bytes

TARGET_RATE = 100_000
MB = 1024 * 1024


def extra_args(parser: Any) -> None:
    parser.add_argument("--workdir", type=Path, default=Path.cwd())
    parser.add_argument("--variant", choices=("noop", "store", "down"), default=None)
    parser.add_argument("--seconds", type=float, default=None)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_variant(variant: str, seconds: float, workdir: Path) -> dict[str, Any]:
    """The child process: run the loop and return RSS samples and counts."""
    import logging

    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
    from opentelemetry.trace import SpanKind

    from _datagen import Population, SpanFactory
    from spanledger import CostExporter, Store, UserAttributionProcessor, attribute_to

    logging.getLogger("opentelemetry.sdk._shared_internal").setLevel(logging.ERROR)

    class Noop(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    store = None
    if variant == "noop":
        exporter: SpanExporter = Noop()
    elif variant == "store":
        store = Store(f"chdb://{workdir / 'chdb'}?database=q8")
        exporter = CostExporter(store=store)
    else:
        kwargs: dict[str, Any] = {}
        if "spool_dir" in inspect.signature(CostExporter.__init__).parameters:
            kwargs["spool_dir"] = str(workdir / "spool")  # keep the spool where it is measured
        exporter = CostExporter(store=f"http://127.0.0.1:{closed_port()}/q8?connect_timeout=1", **kwargs)
    pop = Population()
    work = list(SpanFactory(pop).attributes(2_000))
    for _u, _f, _start, end_attrs, _e in work:
        end_attrs.pop("gen_ai.response.id", None)  # set per span below: the exporter de-duplicates by response id
    provider = TracerProvider()
    provider.add_span_processor(UserAttributionProcessor())
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = provider.get_tracer("bench")

    samples: list[tuple[float, int]] = []
    stop = threading.Event()
    t0 = time.perf_counter()

    def sample() -> None:
        while not stop.is_set():
            samples.append((time.perf_counter() - t0, rss_bytes()))
            stop.wait(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    made = 0
    end = t0 + seconds
    users = pop.user_names
    while True:
        now = time.perf_counter()
        if now >= end:
            break
        burst = min(int((now - t0) * TARGET_RATE) - made, 1_000)  # short bursts: the clock is checked often
        if burst <= 0:
            time.sleep(0.01)
            continue
        for _ in range(burst):
            u, _f, start, end_attrs, _e = work[made % 2_000]
            with attribute_to(user_id=users[u], tenant_id=pop.tenant_names[int(pop.user_tenant[u])], plan="pro"):
                span = tracer.start_span("chat", kind=SpanKind.CLIENT, attributes=start)
                span.set_attributes(end_attrs)
                span.set_attribute("gen_ai.response.id", f"chatcmpl-{made}")
                span.end()
            made += 1
    elapsed = time.perf_counter() - t0
    stop.set()
    sampler.join()
    rss_before_shutdown = rss_bytes()
    provider.shutdown()
    stored = None
    if store is not None:
        stored = int(store.query("SELECT count() FROM q8.llm_calls").result_rows[0][0])
    stats = getattr(exporter, "stats", None)
    return {
        "variant": variant,
        "seconds": elapsed,
        "spans_made": made,
        "rate": made / elapsed,
        "stored": stored,
        "exporter_stats": dict(stats) if stats is not None else None,
        "samples": samples,
        "rss_before_shutdown": rss_before_shutdown,
        "workdir_bytes": dir_bytes(workdir),
    }


def slope_mb_per_min(points: list[tuple[float, int]]) -> float:
    if len(points) < 2:
        return 0.0
    xs = [p[0] for p in points]
    ys = [p[1] / MB for p in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return (sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den * 60) if den else 0.0


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], extra_args)
    seconds = args.seconds or (8.0 if args.quick else 60.0)
    if args.variant:
        result = run_variant(args.variant, seconds, args.workdir)
        (args.workdir / "variant.json").write_text(json.dumps(result))
        return
    results = {}
    for variant in ("noop", "store", "down"):
        with tempfile.TemporaryDirectory(prefix=f"q8_{variant}_", dir=args.workdir) as tmp:
            cmd = [sys.executable, __file__, "--variant", variant, "--seconds", str(seconds), "--workdir", tmp]
            with open(Path(tmp) / "stderr.log", "w") as err:
                subprocess.run(cmd, cwd=tmp, check=True, stdout=subprocess.DEVNULL, stderr=err, timeout=seconds + 300)
            results[variant] = json.loads((Path(tmp) / "variant.json").read_text())
            log = (Path(tmp) / "stderr.log").read_text(errors="replace")
            results[variant]["stderr_lines"] = log.count("\n")
    rows = []
    base = results["noop"]
    for variant, label in (
        ("noop", "baseline: no-op exporter"),
        ("store", "CostExporter → embedded chDB"),
        ("down", "CostExporter → store down (closed port)"),
    ):
        r = results[variant]
        samples = [(t, b) for t, b in r["samples"]]
        warm = [p for p in samples if p[0] >= seconds / 6]
        warm_rss = warm[0][1] if warm else samples[-1][1]
        end_rss = samples[-1][1]
        peak = max(b for _, b in samples)
        growth = (end_rss - warm_rss) / MB
        slope = slope_mb_per_min(warm)
        bounded = growth <= max(16.0, 0.05 * warm_rss / MB)
        rows.append(
            row(
                label,
                "MB RSS (samples after warm-up)",
                [b / MB for _, b in warm] or [end_rss / MB],
                [b / MB for t, b in base["samples"] if t >= seconds / 6] if variant != "noop" else None,
                target="bounded (flat after warm-up)",
                met=bounded if variant != "noop" else None,
                rss_after_warmup_mb=warm_rss / MB,
                rss_end_mb=end_rss / MB,
                rss_peak_mb=peak / MB,
                growth_after_warmup_mb=growth,
                slope_mb_per_min=slope,
                spans_per_s=r["rate"],
                spans_made=r["spans_made"],
                stored=r["stored"],
                exporter_stats=r["exporter_stats"],
                workdir_bytes=r["workdir_bytes"],
                stderr_lines=r["stderr_lines"],
            )
        )
    notes = [
        f"{r['variant']}: {r['rate']:,.0f} spans/s reached of {TARGET_RATE:,} asked, "
        f"{r['spans_made']:,} spans in {r['seconds']:.0f} s"
        + (f", {r['stored']:,} stored" if r["stored"] is not None else "")
        + f", working directory {r['workdir_bytes'] / MB:.1f} MB at the end, {r['stderr_lines']} stderr lines"
        for r in results.values()
    ]
    for rw in rows:
        notes.append(
            f"{rw['case']}: RSS after warm-up {rw['rss_after_warmup_mb']:.0f} MB, end {rw['rss_end_mb']:.0f} MB, "
            f"peak {rw['rss_peak_mb']:.0f} MB, slope {rw['slope_mb_per_min']:+.1f} MB/min"
        )
    emit(
        args,
        {
            "question": 8,
            "title": "Memory of the host process while exporting",
            "baseline": "the same process and loop with a no-op exporter",
            "target": "bounded (flat after warm-up); print both",
            "method": (
                f"{seconds:.0f} s per variant, each in a fresh process; RSS every 0.5 s; warm-up = first "
                f"{seconds / 6:.0f} s; 'bounded' = growth after warm-up ≤ max(16 MB, 5 %)"
            ),
            "rows": rows,
            "notes": notes,
        },
    )


if __name__ == "__main__":
    main()
