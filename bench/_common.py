"""Shared helpers for the benchmark scripts: command line, timing statistics, result files, machine facts.

Every script prints a short summary and, with ``--json PATH``, writes one result document::

    {"question": 1, "title": ..., "baseline": ..., "target": ..., "method": ..., "rows": [...], "notes": [...]}

Each row carries the absolute figure for our code and for the baseline (median, min, max over the
repeats) and the ratio measured side by side in the same repeat.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
PACKAGES = (
    "spanledger",
    "opentelemetry-sdk",
    "opentelemetry-api",
    "opentelemetry-processor-baggage",
    "opentelemetry-exporter-otlp-proto-http",
    "clickhouse-connect",
    "chdb",
    "chdb-core",
    "genai-prices",
    "numpy",
)


def parse_args(description: str, extra: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    """The options every benchmark script takes: ``--quick`` (small sizes) and ``--json PATH``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the script works")
    parser.add_argument("--json", type=Path, default=None, help="write the result document here")
    if extra is not None:
        extra(parser)
    return parser.parse_args()


def stats(values: Sequence[float]) -> dict[str, Any]:
    """Median, min, max and the spread ``(max - min) / median`` of repeated measurements."""
    vals = [float(v) for v in values]
    if not vals:
        return {"n": 0}
    med = statistics.median(vals)
    return {
        "median": med,
        "min": min(vals),
        "max": max(vals),
        "spread_pct": (max(vals) - min(vals)) / med * 100 if med else 0.0,
        "n": len(vals),
        "values": vals,
    }


def side_by_side(
    repeats: int, ours: Callable[[int], float], baseline: Callable[[int], float]
) -> tuple[list[float], list[float], list[float]]:
    """Run ours and the baseline alternately (order flipped every repeat); return both and ours/baseline."""
    mine, base = round_robin(repeats, ours, baseline)
    ratios = [a / b if b else float("nan") for a, b in zip(mine, base, strict=True)]
    return mine, base, ratios


def round_robin(repeats: int, *runs: Callable[[int], float]) -> list[list[float]]:
    """Run several variants in turn, the order rotated every repeat; one list of results per variant."""
    out: list[list[float]] = [[] for _ in runs]
    for i in range(repeats):
        for j in range(len(runs)):
            k = (i + j) % len(runs)
            out[k].append(runs[k](i))
    return out


def row(
    case: str,
    unit: str,
    ours: Sequence[float],
    baseline: Sequence[float] | None = None,
    ratio: Sequence[float] | None = None,
    *,
    ratio_meaning: str = "",
    target: str = "",
    met: bool | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One table row: absolute figures for ours and the baseline, the side-by-side ratio, the verdict."""
    out: dict[str, Any] = {"case": case, "unit": unit, "ours": stats(ours)}
    if baseline is not None:
        out["baseline"] = stats(baseline)
    if ratio is not None:
        out["ratio"] = stats(ratio)
        out["ratio_meaning"] = ratio_meaning
    out["target"] = target
    out["met"] = met
    out.update(extra)
    return out


def load_average() -> list[float]:
    return list(os.getloadavg())


def emit(args: argparse.Namespace, doc: dict[str, Any] | list[dict[str, Any]]) -> None:
    """Print a summary of the result document(s) and write them to ``--json`` when given."""
    docs = doc if isinstance(doc, list) else [doc]
    for d in docs:
        d.setdefault("quick", bool(args.quick))
        d.setdefault("load_average_end", load_average())
        print(f"Q{d['question']}: {d['title']}")
        for r in d.get("rows", []):
            line = f"  {r['case']}: ours {fmt(r['ours'])} {r['unit']}"
            if "baseline" in r:
                line += f" | baseline {fmt(r['baseline'])}"
            if "ratio" in r:
                line += f" | ratio {fmt(r['ratio'], 2)}x"
            if r.get("met") is not None:
                line += f" | target {r['target']}: {'met' if r['met'] else 'MISSED'}"
            print(line)
        for note in d.get("notes", []):
            print(f"  note: {note}")
    if args.json is not None:
        args.json.write_text(json.dumps(docs, indent=2, default=str))


def fmt(s: dict[str, Any] | None, digits: int | None = None) -> str:
    """``median [min–max]`` with a sensible number of significant digits."""
    if not s or not s.get("n"):
        return "—"
    med, lo, hi = s["median"], s["min"], s["max"]
    if s["n"] == 1:
        return num(med, digits)
    return f"{num(med, digits)} [{num(lo, digits)}–{num(hi, digits)}]"


def num(value: float, digits: int | None = None) -> str:
    if value != value:  # NaN
        return "nan"
    if digits is not None:
        return f"{value:.{digits}f}"
    mag = abs(value)
    if mag >= 1000:
        return f"{value:,.0f}"
    if mag >= 100:
        return f"{value:.0f}"
    if mag >= 10:
        return f"{value:.1f}"
    if mag >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


class Timer:
    """``with Timer() as t: ...`` then ``t.seconds``."""

    def __enter__(self) -> Timer:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start


def rss_bytes() -> int:
    """Resident set size of this process, from ``/proc/self/status``."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def dir_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def _run(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False).stdout.strip()
    except OSError as exc:
        return f"unavailable ({exc})"


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "nproc": _run(["nproc"]),
        "cpu": cpu,
        "free_h": _run(["free", "-h"]),
        "python": sys.version.split()[0],
        "python_V": _run([sys.executable, "-V"]),
        "platform": platform.platform(),
        "packages": versions,
        "load_average": load_average(),
    }
