"""The command line beside ``spanledger serve``: while the server holds the embedded store, every question is
answered through its API — and prints exactly what the store itself printed, as a table, JSON and CSV.

Run as a user runs it: the store is seeded by ``spanledger demo``, each command runs in a subprocess
against the store first; then a real ``spanledger serve`` process holds the store and the same commands run
again, finding the server by the discovery file it leaves in the store's directory, or told ``--server``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from tests.integration.server_support import ACME_TOKEN, ADMIN_TOKEN, GLOBEX_TOKEN

pytestmark = pytest.mark.integration

DISCOVERY = ".spanledger-serve.json"
NOTE = "spanledger: reading through the running spanledger serve at {url}\n"


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SPANLEDGER_")}
    return {**base, "COLUMNS": "160", **extra}  # tables wide enough that no cell is shortened


def cli(*args: str, environ: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "spanledger", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=environ if environ is not None else env(),
        check=False,
    )


def one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert result.stdout == "" and "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("spanledger: error: ")
    return line


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Serving:
    url: str
    process: subprocess.Popen[str]
    discovery: Path


def start_serve(dsn: str, directory: Path) -> Serving:
    """A real ``spanledger serve`` on the store, once it answers (waiting for start-up is not under test)."""
    port = free_port()
    tokens = f"acme={ACME_TOKEN},globex={GLOBEX_TOKEN}"
    server_env = env(SPANLEDGER_ADMIN_TOKEN=ADMIN_TOKEN, SPANLEDGER_TENANT_TOKENS=tokens)
    command = [sys.executable, "-m", "spanledger", "serve", "--store", dsn, "--port", str(port)]
    process = subprocess.Popen(command, env=server_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while not (directory / DISCOVERY).exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"spanledger serve did not start: {process.communicate()[1][-2000:]}")
        time.sleep(0.1)
    with urllib.request.urlopen(f"{url}/healthz", timeout=10) as answer:  # listening when the file appears
        assert answer.status == 200
    return Serving(url, process, directory / DISCOVERY)


def stop(serving: Serving, sig: signal.Signals = signal.SIGTERM) -> str:
    serving.process.send_signal(sig)
    _, stderr = serving.process.communicate(timeout=120)
    return stderr


QUESTIONS: list[tuple[str, ...]] = [
    ("users",),
    ("users", "--format", "json"),
    ("users", "--format", "csv"),
    ("users", "--sort", "requests", "--asc", "--limit", "5", "--page", "2", "--format", "json"),
    ("users", "--search", "{head}", "--format", "csv"),
    ("users", "--tenant", "initech"),
    ("users", "--tag", "plan=pro", "--format", "csv"),
    ("users", "--from", "{middle}", "--to", "2100-01-01T00:00:00Z", "--format", "csv"),
    ("tenants",),
    ("tenants", "--format", "json", "--sort", "tokens"),
    ("tenants", "--format", "csv", "--tag", "plan=enterprise"),
    ("user", "{top}"),
    ("user", "{top}", "--format", "json", "--calls", "3"),
    ("user", "{top}", "--format", "csv"),
    ("user", "(unattributed)", "--calls", "3"),
    ("user", "{head}"),
    ("daily",),
    ("daily", "--per", "tenant", "--format", "csv"),
    ("daily", "--user", "{top}", "--to", "{middle}", "--format", "json"),
    ("overview",),
    ("overview", "--format", "json", "--top", "3"),
    ("overview", "--tenant", "acme"),
    ("users", "--tenant", "", "--format", "csv"),
    ("calls",),
    ("calls", "--format", "json", "--limit", "7", "--count"),
    ("calls", "--tenant", "", "--format", "csv"),
    ("calls", "--user", "{top}", "--status", "error", "--count"),
    ("calls", "--flag", "cached", "--min-cost", "0.0001", "--format", "csv"),
]
"""Every read command, and each option the API must carry."""


@dataclass
class Seeded:
    dsn: str
    directory: Path
    names: dict[str, str]
    """``top``: the costliest user; ``head``: no user, the start of some; ``middle``: a time (to the
    microsecond) half-way through the calls."""
    direct: dict[tuple[str, ...], str]
    """What each question printed reading the store itself."""
    errors: dict[tuple[str, ...], str]
    """The one-line error of each question refused reading the store itself (exit code 2)."""

    def question(self, args: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(a.format(**self.names) for a in args)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    directory = tmp_path_factory.mktemp("remote") / "store"
    dsn = f"chdb://{directory}"
    demo = cli("demo", "--calls", "400", "--store", dsn)
    assert demo.returncode == 0, demo.stderr
    users = json.loads(cli("users", "--format", "json", "--store", dsn).stdout)
    top = next(row["user_id"] for row in users["data"] if row["user_id"])
    first, last = (datetime.fromisoformat(users["data"][0][f"{end}_seen"]) for end in ("first", "last"))
    middle = (first + (last - first) / 2).isoformat()
    seeded = Seeded(dsn, directory, {"top": top, "head": top[:3], "middle": middle}, {}, {})
    for args in QUESTIONS:
        result = cli(*seeded.question(args), "--store", dsn)
        assert result.returncode in (0, 2), (args, result.stderr)
        if result.returncode == 2:
            seeded.errors[args] = result.stderr
        else:
            assert result.stderr == "", args
        seeded.direct[args] = result.stdout
    return seeded


@pytest.fixture(scope="module")
def serving(seeded: Seeded) -> Iterator[Serving]:
    server = start_serve(seeded.dsn, seeded.directory)
    yield server
    stop(server)


def test_serve_leaves_a_discovery_file_naming_its_url_and_pid(seeded: Seeded, serving: Serving) -> None:
    found = json.loads(serving.discovery.read_text())
    assert (found["url"], found["pid"], found["database"]) == (serving.url, serving.process.pid, "spanledger")


def test_every_question_prints_through_serve_what_it_printed_from_the_store(seeded: Seeded, serving: Serving) -> None:
    assert seeded.direct[("users",)].count("\n") > 10  # a real table, not an empty answer
    windowed = ("users", "--from", "{middle}", "--to", "2100-01-01T00:00:00Z", "--format", "csv")
    assert seeded.direct[windowed] != seeded.direct[("users", "--format", "csv")]  # the window cuts calls
    assert "; did you mean " in seeded.errors[("user", "{head}")]  # an unknown user: an error, with the nearest
    assert list(seeded.errors) == [("user", "{head}")]
    assert seeded.direct[("calls", "--tenant", "", "--format", "csv")].count("\n") > 1  # the no-tenant calls
    everyone = seeded.direct[("users", "--format", "csv")].count("\n")
    assert 1 < seeded.direct[("users", "--search", "{head}", "--format", "csv")].count("\n") < everyone  # it finds some
    differ = []
    for args in QUESTIONS:
        result = cli(*seeded.question(args), "--store", seeded.dsn, environ=env(SPANLEDGER_TOKEN=ADMIN_TOKEN))
        assert result.returncode == (2 if args in seeded.errors else 0), (args, result.stderr)
        assert result.stderr == NOTE.format(url=serving.url) + seeded.errors.get(args, ""), args
        if result.stdout != seeded.direct[args]:
            differ.append(args)
    assert differ == []


def test_the_admin_token_the_server_was_started_with_reads_through_it(seeded: Seeded, serving: Serving) -> None:
    result = cli("users", "--format", "csv", "--store", seeded.dsn, environ=env(SPANLEDGER_ADMIN_TOKEN=ADMIN_TOKEN))
    assert (result.returncode, result.stdout) == (0, seeded.direct[("users", "--format", "csv")])


def test_server_with_a_tenant_token_answers_for_that_tenant_only(seeded: Seeded, serving: Serving) -> None:
    result = cli("tenants", "--format", "json", "--server", serving.url, "--token", ACME_TOKEN)
    assert result.returncode == 0, result.stderr
    assert [row["tenant_id"] for row in json.loads(result.stdout)["data"]] == ["acme"]
    assert result.stderr == ""  # told where to ask: nothing to note
    acme_direct = cli("users", "--tenant", "acme", "--format", "json", "--store", seeded.dsn)
    assert acme_direct.returncode != 0  # the store is held: only the server can answer now
    through = cli("users", "--format", "json", "--server", serving.url, environ=env(SPANLEDGER_TOKEN=ACME_TOKEN))
    assert {row["tenant_id"] for row in json.loads(through.stdout)["data"]} == {"acme"}
    refused = cli("users", "--tenant", "globex", "--server", serving.url, "--token", ACME_TOKEN)
    assert "can only read tenant 'acme'" in one_line_error(refused, 2)


def test_server_without_or_with_a_wrong_token_is_one_line(serving: Serving) -> None:
    assert "wants a token" in one_line_error(cli("users", "--server", serving.url), 2)
    assert "refused the token" in one_line_error(cli("users", "--server", serving.url, "--token", "wrong"), 2)
    bad = cli("users", "--limit", "5000", "--server", serving.url, "--token", ADMIN_TOKEN)
    assert "limit: Input should be less than or equal to 1000" in one_line_error(bad, 2)


@pytest.mark.parametrize(
    ("command", "advice"),
    [
        (("rebuild",), "stop it, rebuild, then start it again"),
        (("quarantine", "replay"), "POST /api/v1/quarantine/replay"),
        (("demo", "--calls", "1"), "stop it first"),
        (("serve", "--port", "1"), "it already serves this store"),
    ],
)
def test_commands_that_write_say_they_need_the_store(
    seeded: Seeded, serving: Serving, command: tuple[str, ...], advice: str
) -> None:
    line = one_line_error(cli(*command, "--store", seeded.dsn, environ=env(SPANLEDGER_ADMIN_TOKEN="x" * 16)), 1)
    assert f"is held by spanledger serve at {serving.url} (pid {serving.process.pid})" in line
    assert advice in line


def test_status_names_the_server_holding_the_store(seeded: Seeded, serving: Serving) -> None:
    result = cli("status", "--format", "json", "--store", seeded.dsn)
    assert result.returncode == 0, result.stderr
    assert serving.url in json.loads(result.stdout)["store_contents"]["error"]


def test_another_database_of_the_held_directory_is_refused_in_one_line(seeded: Seeded, serving: Serving) -> None:
    line = one_line_error(cli("users", "--store", f"{seeded.dsn}?database=other"), 1)
    assert f"held by spanledger serve at {serving.url}" in line
    assert "serves its database 'spanledger', not 'other'" in line
