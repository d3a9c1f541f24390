"""Q15: how long a small ``spanledger`` command takes, from the shell prompt to its last line — before and after.

Each command runs as a user runs it (``python -m spanledger …`` in a fresh process, wall time from start to
exit), alternately with this tree's code and with the code of the tree before the CLI work (``--before``,
default the merge base ``c05847f``: extracted with ``git archive`` and put first on ``PYTHONPATH``), in the
same interpreter and environment, the order flipped every repeat:

* ``--help`` and a mistyped option (``users --bogus``): argparse alone should answer;
* ``users`` (table and ``--format json``) on a small embedded store (``spanledger demo --calls 300``);
* ``users`` while ``spanledger serve`` holds that store: before, the command can only fail on the lock
  (its time to print the error); now it reads through the server (found by its discovery file) —
  and ``users --server URL``, told where the server is.

Bare ``python -c pass`` is measured too: the floor any command pays.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BENCH_DIR, emit, parse_args, round_robin, row

REPO = BENCH_DIR.parent


def extra_args(parser: Any) -> None:
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--before", default="c05847f", help="git revision of the 'before' code (default c05847f)")


def extract(revision: str, into: Path) -> Path:
    """The package as it was at ``revision`` (``git archive``: no worktree, nothing left in the repository)."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", revision, "src/spanledger"],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def environment(src: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPANLEDGER_")}
    return {**env, "PYTHONPATH": str(src), "COLUMNS": "160", **extra}


def timed(argv: list[str], env: dict[str, str], cwd: Path, *, ok: bool = True) -> float:
    """Seconds from start to exit of ``python <argv>``; checks it succeeded (or failed, ``ok=False``)."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, *argv], env=env, cwd=cwd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if (result.returncode == 0) != ok:
        raise SystemExit(f"{argv} exited {result.returncode}: {result.stderr[-2000:]}")
    return seconds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], extra_args)
    repeats = 3 if args.quick else 9
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="spanledger-bench-q15-"))
    after_src = REPO / "src"
    before_src = extract(args.before, workdir / "before")
    after, before = environment(after_src), environment(before_src)
    for src, env in ((after_src, after), (before_src, before)):  # each runs the code it is meant to
        where = subprocess.run(
            [sys.executable, "-c", "import spanledger; print(spanledger.__file__)"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert where.startswith(str(src)), (where, src)
    store = workdir / "store"
    dsn = f"chdb://{store}"
    subprocess.run(
        [sys.executable, "-m", "spanledger", "demo", "--calls", "300", "--store", dsn],
        env=after,
        cwd=workdir,
        capture_output=True,
        check=True,
    )

    rows = []
    floor = [timed(["-c", "pass"], after, workdir) for _ in range(repeats)]
    rows.append(row("bare `python -c pass` (the floor)", "s", floor))

    def case(title: str, argv: list[str], *, ok: bool = True, before_ok: bool = True) -> None:
        ours, base = round_robin(
            repeats,
            lambda _i: timed(["-m", "spanledger", *argv], after, workdir, ok=ok),
            lambda _i: timed(["-m", "spanledger", *argv], before, workdir, ok=before_ok),
        )
        ratio = [a / b for a, b in zip(ours, base, strict=True)]
        rows.append(row(title, "s", ours, base, ratio, ratio_meaning="after / before, wall time of the command"))

    case("`spanledger --help`", ["--help"])
    case("`spanledger users --bogus` (a bad argument)", ["users", "--bogus"], ok=False, before_ok=False)
    case("`spanledger users` on a 300-call embedded store", ["users", "--store", dsn])
    case("`spanledger users --format json`, same store", ["users", "--format", "json", "--store", dsn])

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "spanledger", "serve", "--store", dsn, "--port", str(port), "--no-auth"],
        env=after,
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not (store / ".spanledger-serve.json").exists():
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("spanledger serve did not start")
            time.sleep(0.1)
        urllib.request.urlopen(f"{url}/healthz", timeout=10).close()
        case(
            "`spanledger users` while serve holds the store (before: fails on the lock)",
            ["users", "--store", dsn],
            before_ok=False,
        )
        told = [timed(["-m", "spanledger", "users", "--server", url], after, workdir) for _ in range(repeats)]
        rows.append(row("`spanledger users --server URL`", "s", told))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=120)
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    emit(
        args,
        {
            "question": 15,
            "title": "CLI start-up: a small command from prompt to answer, before and after",
            "baseline": f"the same commands with the code of {args.before} (before lazy imports and reading through serve)",
            "target": "documented (issue 16: where a small command's 2–3 s go, cut; a benchmark row before/after)",
            "method": __doc__,
            "rows": rows,
            "notes": [
                "wall time of a whole process, so it moves with the machine's load (the issue's 2-3 s were seen "
                "on a busy machine); the ratio is measured side by side, repeat by repeat",
            ],
        },
    )


if __name__ == "__main__":
    main()
