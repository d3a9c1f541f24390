"""What a start-up imports: ``import spanledger`` and the command line load the heavy libraries only when a
command needs them. A behaviour (``sys.modules``), not a timing: each case runs in a fresh interpreter."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import spanledger

HEAVY = (
    "chdb",
    "clickhouse_connect",
    "genai_prices",
    "opentelemetry.sdk",
    "pyarrow",
    "numpy",
    "rich",
    "fastapi",
    "spanledger._store.store",
)
"""What no start-up that does not read or write the store should import."""


def _loaded_after(code: str) -> dict[str, object]:
    """Run ``code`` in a fresh interpreter; which of :data:`HEAVY` it imported, and what it printed."""
    body = textwrap.indent(textwrap.dedent(code).strip(), " " * 8)
    probe = (
        "import contextlib, io, json, sys\n"
        "out, err = io.StringIO(), io.StringIO()\n"
        "with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):\n"
        "    try:\n"
        f"{body}\n"
        "    except SystemExit:\n"
        "        pass\n"
        f"loaded = sorted(h for h in {list(HEAVY)!r} if h in sys.modules)\n"
        'print(json.dumps({"loaded": loaded, "stdout": out.getvalue(), "stderr": err.getvalue()}))\n'
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    outcome: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return outcome


def test_import_spanledger_loads_nothing_heavy() -> None:
    outcome = _loaded_after("import spanledger\nprint(spanledger.__version__, len(spanledger.__all__))")
    assert outcome["loaded"] == []
    assert outcome["stdout"] == f"{spanledger.__version__} {len(spanledger.__all__)}\n"


def test_a_public_name_is_imported_when_first_used() -> None:
    outcome = _loaded_after("import spanledger\nspanledger.Store")
    assert "clickhouse_connect" in outcome["loaded"] and "genai_prices" not in outcome["loaded"]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--help"], "usage: spanledger"),
        (["users", "--help"], "--tenant"),
        (["--version"], "spanledger "),
    ],
)
def test_help_and_version_load_nothing_heavy(argv: list[str], expected: str) -> None:
    outcome = _loaded_after(f"from spanledger._cli.main import main\nmain({argv!r})")
    assert outcome["loaded"] == []
    assert expected in str(outcome["stdout"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["users", "--bogus"], "unrecognized arguments: --bogus"),
        (["users", "--limit", "0"], "must be 1 or more"),
        (["user"], "the following arguments are required: ID"),
        (["daily", "--per", "model"], "invalid choice: 'model'"),
    ],
)
def test_a_bad_argument_is_refused_before_anything_heavy_is_imported(argv: list[str], message: str) -> None:
    outcome = _loaded_after(f"from spanledger._cli.main import main\nsys.exit(main({argv!r}))")
    assert outcome["loaded"] == []
    assert message in str(outcome["stderr"]) and str(outcome["stderr"]).count("\n") == 1


def test_every_lazy_name_is_the_one_type_checkers_see() -> None:
    """The ``if TYPE_CHECKING:`` imports of ``spanledger/__init__.py`` and its ``_WHERE`` table name the same
    modules and names, and every name in ``__all__`` resolves."""
    source = Path(spanledger.__file__).read_text()
    tree = ast.parse(source)
    guarded = next(node for node in tree.body if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test))
    static = {
        f".{node.module}": {alias.name for alias in node.names}
        for node in guarded.body
        if isinstance(node, ast.ImportFrom)
    }
    lazy = {module: set(names.split()) for module, names in spanledger._WHERE.items()}
    assert static == lazy
    assert set(spanledger.__all__) == {name for names in lazy.values() for name in names} | {"__version__"}
