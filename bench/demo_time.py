"""How long ``spanledger demo`` takes, store creation included, beside a demo of its real requests alone.

Ours: the default month (30,000 calls: the newest 200 as real requests through the ``openai`` client and
instrumentation to the stub server, the rest straight to the same exporter's pipeline) into a fresh chDB
directory. Baseline: ``--calls 200``, the same real requests and fixed costs (imports, store creation,
report) with no month before them: the difference is what the month's history costs. Each run is a fresh
``python -m spanledger demo`` process (chDB allows one data location per process), run alternately; wall
time, the process's CPU time (user + sys) and the load average at its start are recorded. The machine is
shared with other work: the spread is part of the answer. The target is 30 s of wall time.

    python bench/demo_time.py [--repeats 5] [--quick] [--json PATH]
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, load_average, parse_args, row, side_by_side

TARGET_S = 30.0


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], lambda p: p.add_argument("--repeats", type=int, default=5))
    repeats = 2 if args.quick else args.repeats
    calls = 3000 if args.quick else None
    until = datetime.now(UTC).replace(minute=0, second=0, microsecond=0).isoformat()
    cpu: dict[str, list[float]] = {"ours": [], "baseline": []}
    loads: dict[str, list[float]] = {"ours": [], "baseline": []}

    def demo(kind: str, extra: list[str]) -> float:
        with tempfile.TemporaryDirectory(prefix="spanledger-demo-bench-") as tmp:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            loads[kind].append(os.getloadavg()[0])
            began = time.monotonic()
            cmd = [sys.executable, "-m", "spanledger", "demo", "--store", f"chdb://{tmp}/store", "--until", until]
            result = subprocess.run([*cmd, *extra], capture_output=True, text=True, cwd=tmp, check=False)
            wall = time.monotonic() - began
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if result.returncode != 0:
            raise SystemExit(f"spanledger demo failed ({result.returncode}): {result.stderr[-2000:]}")
        cpu[kind].append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        return wall

    month = ["--calls", str(calls)] if calls else []
    ours, base, ratios = side_by_side(
        repeats, lambda _: demo("ours", month), lambda _: demo("baseline", ["--calls", "200"])
    )
    rows = [
        row(
            "wall time, store creation included",
            "s",
            ours,
            base,
            ratios,
            ratio_meaning="the month / its 200 real requests alone",
            target=f"<= {TARGET_S:.0f} s",
            met=max(ours) <= TARGET_S,
        ),
        row("CPU time (user + sys)", "s", cpu["ours"], cpu["baseline"]),
        row("load average (1 min) at the start", "", loads["ours"], loads["baseline"]),
    ]
    emit(
        args,
        {
            "question": "demo",
            "title": "spanledger demo: a month of traffic, wall and CPU time",
            "baseline": "spanledger demo --calls 200 (the real requests alone)",
            "target": f"<= {TARGET_S:.0f} s wall time on the project's 2-core machine",
            "method": __doc__,
            "rows": rows,
            "notes": [f"load average at the end: {load_average()}"],
        },
    )


if __name__ == "__main__":
    main()
