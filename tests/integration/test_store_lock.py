"""The embedded store from two processes, and two embedded stores in one process: clear errors, no stack traces.

Every chDB here runs in a subprocess with its own directory: the pytest process may open only its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

_HOLDER = textwrap.dedent(
    """
    import sys
    import spanledger
    store = spanledger.Store(sys.argv[1])  # kept referenced: the engine closes with its last client
    print("ready", flush=True)
    sys.stdin.read()  # hold the directory until the test closes stdin
    """
)
_SECOND = textwrap.dedent(
    """
    import json, sys
    import spanledger
    try:
        spanledger.Store(sys.argv[1])
    except spanledger.StoreError as exc:
        print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
    else:
        print(json.dumps({"error": None}))
    """
)
_TWO_PATHS = textwrap.dedent(
    """
    import json, sys
    import spanledger
    first = spanledger.Store(sys.argv[1])
    try:
        spanledger.Store(sys.argv[2])
    except spanledger.StoreError as exc:
        outcome = {"error": type(exc).__name__, "message": str(exc)}
    else:
        outcome = {"error": None}
    outcome["first_still_works"] = first.query("SELECT 1").result_rows == [(1,)]
    print(json.dumps(outcome))
    """
)


def _python(code: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def _spanledger_traceback(stderr: str) -> list[str]:
    """Lines of a Python traceback or of spanledger's own logging in ``stderr`` (chDB may print its own)."""
    return [line for line in stderr.splitlines() if "Traceback" in line or "spanledger" in line]


def test_a_second_process_gets_store_locked_error_naming_the_holder(tmp_path: Path) -> None:
    dsn = f"chdb://{tmp_path / 'store'}?database=locked"
    with subprocess.Popen(
        [sys.executable, "-c", _HOLDER, dsn], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as holder:
        assert holder.stdin is not None and holder.stdout is not None
        try:
            assert holder.stdout.readline().strip() == "ready"
            second = _python(_SECOND, dsn)
        finally:
            holder.stdin.close()
            holder.wait(timeout=60)
    assert second.returncode == 0, second.stderr
    outcome = json.loads(second.stdout.strip().splitlines()[-1])
    assert outcome["error"] == "StoreLockedError"
    assert f"PID {holder.pid}" in outcome["message"]
    assert str(tmp_path / "store") in outcome["message"]
    assert _spanledger_traceback(second.stderr) == []
    assert holder.returncode == 0


def test_once_the_holder_exits_the_next_process_opens_the_store(tmp_path: Path) -> None:
    dsn = f"chdb://{tmp_path / 'store'}"
    with subprocess.Popen(
        [sys.executable, "-c", _HOLDER, dsn], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as holder:
        assert holder.stdin is not None and holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
        holder.stdin.close()
        holder.wait(timeout=60)
    after = _python(_SECOND, dsn)
    assert json.loads(after.stdout.strip().splitlines()[-1]) == {"error": None}, after.stderr


@pytest.mark.parametrize("second", ["other-dir", "memory"])
def test_opening_a_second_embedded_location_in_one_process_is_a_clear_store_error(tmp_path: Path, second: str) -> None:
    other = tmp_path / "other"
    second_dsn = f"chdb://{other}" if second == "other-dir" else "chdb://memory"
    result = _python(_TWO_PATHS, f"chdb://{tmp_path / 'first'}", second_dsn)
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["error"] == "StoreError"  # not StoreLockedError: no other process is involved
    assert str(tmp_path / "first") in outcome["message"]
    assert (str(other) if second == "other-dir" else ":memory:") in outcome["message"]
    assert outcome["first_still_works"] is True
    assert not other.exists()
    assert _spanledger_traceback(result.stderr) == []
