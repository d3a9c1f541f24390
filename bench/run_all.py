"""Run every benchmark, each in its own process and temporary directory, and write the results.

    python bench/run_all.py            # full run (about 30 minutes on 2 cores): bench/results.json, bench/RESULTS.md
    python bench/run_all.py --quick    # small sizes, to check the scripts work (results go to a temp dir)
    python bench/run_all.py --only q1,q4   # re-run some; the other questions' results are kept

chDB allows one data location per process, so every script that opens chDB runs in a fresh subprocess
with its own working directory (removed afterwards).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BENCH_DIR, fmt, machine

# (key, script, passes --workdir, timeout in seconds for the full run)
SCRIPTS = (
    ("q1", "q1_attribution.py", False, 600),
    ("q2", "q2_host_overhead.py", True, 900),
    ("q3", "q3_exporter_throughput.py", True, 1200),
    ("q4", "q4_pricing.py", False, 900),
    ("q5", "q5_q6_queries.py", True, 3600),
    ("q7", "q7_freshness.py", True, 600),
    ("q8", "q8_memory.py", True, 900),
    ("q9", "q9_storage.py", True, 900),
    ("q10", "q10_redelivery.py", True, 2400),
    ("q11", "q11_budgets.py", True, 3600),
    ("q16", "q16_customers.py", True, 2400),
    ("q12", "q12_billing.py", True, 5400),
    ("q13", "q13_forget.py", True, 3600),
    ("q14", "q14_calls_explorer.py", True, 3600),
    ("q15", "q15_cli_startup.py", True, 900),
)
NOTES_MARKER = "<!-- written by hand from here on: run_all.py keeps it -->"

QUESTIONS = {
    "q1": (1,),
    "q2": (2,),
    "q3": (3,),
    "q4": (4,),
    "q5": (5, 6),
    "q7": (7,),
    "q8": (8,),
    "q9": (9,),
    "q10": (10,),
    "q11": (11,),
    "q12": (12,),
    "q13": (13,),
    "q14": (14,),
    "q15": (15,),
    "q16": (16,),
}


def run_one(key: str, script: str, workdir_arg: bool, timeout: int, quick: bool) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix=f"spanledger-bench-{key}-"))
    out = tmp / "result.json"
    cmd = [sys.executable, str(BENCH_DIR / script), "--json", str(out)]
    if workdir_arg:
        cmd += ["--workdir", str(tmp)]
    if quick:
        cmd.append("--quick")
    print(f"== {key}: {' '.join(cmd[1:])}", flush=True)
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=timeout, check=False)
        code, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        code, stdout, stderr = -1, str(exc.stdout or ""), f"timed out after {timeout} s"
    seconds = time.perf_counter() - started
    print(stdout, end="", flush=True)
    result: dict[str, Any] = {"key": key, "script": script, "seconds": seconds, "exit_code": code}
    if code == 0 and out.exists():
        result["documents"] = json.loads(out.read_text())
    else:
        result["error"] = (stderr or "")[-4000:]
        print(f"!! {key} failed (exit {code}):\n{result['error']}", flush=True)
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"== {key} done in {seconds:.0f} s", flush=True)
    return result


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# spanledger benchmarks",
        "",
        f"Generated {report['generated_at']} by `python bench/run_all.py{' --quick' if report['quick'] else ''}` "
        f"in {report['total_seconds'] / 60:.1f} min. Each figure is the median over the repeats with "
        "[min–max] after it; ratios are measured side by side in the same run, repeat by repeat.",
        "",
        "## Machine",
        "",
        f"- `nproc`: {m['nproc']}; CPU: {m['cpu'] or 'unknown'}; {m['platform']}",
        f"- `python -V`: {m['python_V']}",
        f"- packages: {', '.join(f'{k} {v}' for k, v in m['packages'].items())}",
        f"- load average at start: {', '.join(f'{x:.2f}' for x in m['load_average'])} "
        "(other work on the machine shares its cores; absolute numbers move with it, ratios much less)",
        "",
        "```",
        m["free_h"],
        "```",
        "",
        "## Results",
        "",
        "| Q | case | ours | baseline | ratio | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for doc in report["questions"]:
        for r in doc["rows"]:
            ratio = f"{fmt(r['ratio'], 2)}×" if "ratio" in r else "—"
            met = {True: "yes", False: "**no**", None: ""}[r.get("met")]
            lines.append(
                f"| {doc['question']} | {r['case']} | {fmt(r['ours'])} {r['unit']} | "
                f"{fmt(r.get('baseline')) if 'baseline' in r else '—'} | {ratio} | {r.get('target', '')} | {met} |"
            )
    for failure in report["failures"]:
        lines.append(f"| {failure['key']} | **failed** (exit {failure['exit_code']}) | | | | | |")
    lines += ["", "## What each question measured", ""]
    for doc in report["questions"]:
        lines.append(f"### Q{doc['question']}: {doc['title']}")
        lines.append("")
        lines.append(f"Baseline: {doc['baseline']}. Target: {doc['target']}.")
        if doc.get("method"):
            lines.append(f"Method: {doc['method']}.")
        meanings = sorted({r["ratio_meaning"] for r in doc["rows"] if r.get("ratio_meaning")})
        for meaning in meanings:
            lines.append(f"Ratio: {meaning}.")
        for note in doc.get("notes", []):
            lines.append(f"- {note}")
        lines.append("")
    lines.append("Scripts: " + ", ".join(f"`bench/{s}`" for _k, s, _w, _t in SCRIPTS) + " (data: `bench/_datagen.py`).")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, to check that every script works")
    parser.add_argument("--only", default="", help="comma-separated keys, e.g. q1,q5")
    parser.add_argument("--out-dir", type=Path, default=None, help="default: bench/ (full) or a temp dir (--quick)")
    args = parser.parse_args()
    only = {k.strip() for k in args.only.split(",") if k.strip()}
    out_dir = args.out_dir or (Path(tempfile.gettempdir()) / "spanledger-bench-quick" if args.quick else BENCH_DIR)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    info = machine()
    results = [
        run_one(key, script, workdir, timeout if not args.quick else 600, args.quick)
        for key, script, workdir, timeout in SCRIPTS
        if not only or key in only
    ]
    questions = [doc for r in results for doc in r.get("documents", [])]
    previous = out_dir / "results.json"
    if only and previous.exists():  # a partial re-run replaces only its own questions
        rerun = {q for key in only for q in QUESTIONS.get(key, ())}
        kept = [d for d in json.loads(previous.read_text()).get("questions", []) if d["question"] not in rerun]
        questions += kept
    questions.sort(key=lambda d: d["question"])
    report = {
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": args.quick,
        "total_seconds": time.perf_counter() - started,
        "machine": info,
        "load_average_end": list(__import__("os").getloadavg()),
        "scripts": [{k: v for k, v in r.items() if k != "documents"} for r in results],
        "failures": [r for r in results if r["exit_code"] != 0],
        "questions": questions,
    }
    (out_dir / "results.json").write_text(json.dumps(report, indent=2, default=str))
    results_md = out_dir / "RESULTS.md"
    kept_notes = ""  # the hand-written analysis below the marker survives every re-run
    if results_md.exists() and NOTES_MARKER in results_md.read_text():
        kept_notes = results_md.read_text().split(NOTES_MARKER, 1)[1]
    results_md.write_text(markdown(report) + "\n" + NOTES_MARKER + kept_notes)
    print(f"wrote {out_dir / 'results.json'} and {out_dir / 'RESULTS.md'} in {report['total_seconds'] / 60:.1f} min")
    if report["failures"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
