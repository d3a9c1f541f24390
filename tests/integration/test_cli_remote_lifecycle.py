"""The discovery file over a server's life: gone when serve stops, ignored when serve was killed or does not
answer — the command line then reads the store itself, or says in one line why it cannot."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.integration.test_cli_remote import DISCOVERY, cli, env, free_port, one_line_error, start_serve, stop

pytestmark = pytest.mark.integration

_HOLDER = textwrap.dedent(
    """
    import sys
    import spanledger
    store = spanledger.Store(sys.argv[1])
    print("ready", flush=True)
    sys.stdin.read()
    """
)


@pytest.fixture
def store(tmp_path: Path) -> tuple[str, Path, str]:
    """A small demo store: its DSN, its directory, and what ``users --format json`` printed from it."""
    directory = tmp_path / "store"
    dsn = f"chdb://{directory}"
    demo = cli("demo", "--calls", "40", "--store", dsn)
    assert demo.returncode == 0, demo.stderr
    users = cli("users", "--format", "json", "--store", dsn)
    assert users.returncode == 0, users.stderr
    return dsn, directory, users.stdout


def test_a_stopped_server_removes_its_file_and_the_store_is_read_directly_again(store: tuple[str, Path, str]) -> None:
    dsn, directory, before = store
    serving = start_serve(dsn, directory)
    through = cli(
        "users", "--format", "json", "--store", dsn, environ=env(SPANLEDGER_ADMIN_TOKEN="admin-0123456789abcdef")
    )
    assert (through.returncode, through.stdout) == (0, before), through.stderr
    stop(serving, signal.SIGTERM)
    assert not (directory / DISCOVERY).exists()
    after = cli("users", "--format", "json", "--store", dsn)
    assert (after.returncode, after.stdout, after.stderr) == (0, before, "")


def test_a_killed_servers_file_is_ignored(store: tuple[str, Path, str], tmp_path: Path) -> None:
    dsn, directory, before = store
    serving = start_serve(dsn, directory)
    stop(serving, signal.SIGKILL)
    assert json.loads((directory / DISCOVERY).read_text())["pid"] == serving.process.pid  # left behind
    result = cli("users", "--format", "json", "--store", dsn)
    assert (result.returncode, result.stdout, result.stderr) == (0, before, "")  # the store is free: read it

    # the store held by another process, the stale file naming a dead server: the lock is what is said
    with subprocess.Popen(
        [sys.executable, "-c", _HOLDER, dsn], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as holder:
        assert holder.stdin is not None and holder.stdout is not None
        try:
            assert holder.stdout.readline().strip() == "ready"
            line = one_line_error(cli("users", "--store", dsn), 1)
        finally:
            holder.stdin.close()
            holder.wait(timeout=60)
    assert f"is in use by PID {holder.pid}" in line
    assert serving.url not in line


def test_a_file_whose_server_does_not_answer_is_ignored(store: tuple[str, Path, str]) -> None:
    """A live pid (ours: a recycled pid looks the same) behind a URL nothing listens on."""
    dsn, directory, before = store
    dead = f"http://127.0.0.1:{free_port()}"
    file = directory / DISCOVERY
    file.write_text(json.dumps({"url": dead, "pid": os.getpid(), "database": "spanledger", "started_at": ""}))
    result = cli("users", "--format", "json", "--store", dsn)
    assert (result.returncode, result.stdout, result.stderr) == (0, before, "")
    assert file.exists()  # not ours to remove


def test_server_options_refused_in_one_line(store: tuple[str, Path, str]) -> None:
    dsn, _, _ = store
    dead = f"http://127.0.0.1:{free_port()}"
    line = one_line_error(cli("users", "--server", dead), 1)
    assert line == f"spanledger: error: cannot reach spanledger serve at {dead}: connection refused (is it running?)"
    assert "not both" in one_line_error(cli("tenants", "--server", dead, "--store", dsn), 2)
    assert "bad --server 'ftp://x'" in one_line_error(cli("daily", "--server", "ftp://x"), 2)
    assert "bad --server" in one_line_error(cli("overview", "--server", "http://127.0.0.1:99999"), 2)
