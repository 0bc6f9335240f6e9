"""Issue 15, fourth pass: DuckDB's memory limit and spill folder are set deliberately and configurable; the fast
paths added here give the same results as the slow ones."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dashboard.core.errors import UsageError
from dashboard.store import connections
from dashboard.store.db import Store


def _settings(store: Store) -> tuple[str, str]:
    row = store.query("SELECT current_setting('memory_limit'), current_setting('temp_directory')")[0]
    return str(row[0]), str(row[1])


def test_default_memory_limit_and_spill_folder_beside_the_store(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Test that a store opens with a 1 GiB DuckDB memory limit and spills to `<store>.tmp`, read-write and
    read-only alike."""
    monkeypatch.delenv(connections.ENV_MEMORY, raising=False)
    monkeypatch.delenv(connections.ENV_TEMP, raising=False)
    path = tmp_path / "s.duckdb"
    for read_only in (False, True):
        store = Store(path, read_only=read_only)
        try:
            assert _settings(store) == ("1.0 GiB", f"{path}.tmp")
        finally:
            store.close()


def test_memory_limit_and_spill_folder_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Test that $READINESS_DUCKDB_MEMORY and $READINESS_DUCKDB_TEMP set the limit and the folder."""
    monkeypatch.setenv(connections.ENV_MEMORY, "512MiB")
    monkeypatch.setenv(connections.ENV_TEMP, str(tmp_path / "spill"))
    store = Store(tmp_path / "s.duckdb")
    try:
        assert _settings(store) == ("512.0 MiB", str(tmp_path / "spill"))
    finally:
        store.close()


@pytest.mark.parametrize("bad", ["bogus", "12", "1 GiB; SELECT 1", "-1GB"])
def test_a_malformed_memory_limit_is_refused_plainly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    """Test that a malformed $READINESS_DUCKDB_MEMORY is a usage error naming the variable, in the library and
    in the CLI (no traceback)."""
    monkeypatch.delenv(connections.ENV_MEMORY, raising=False)
    Store(tmp_path / "s.duckdb").close()
    monkeypatch.setenv(connections.ENV_MEMORY, bad)
    with pytest.raises(UsageError, match="READINESS_DUCKDB_MEMORY"):
        Store(tmp_path / "s.duckdb")
    out = subprocess.run([sys.executable, "-m", "dashboard.cli", "status", "--db", str(tmp_path / "s.duckdb"),
                          "--release", "x"], capture_output=True, text=True, check=False)
    assert out.returncode == 2
    assert "READINESS_DUCKDB_MEMORY" in out.stderr and "Traceback" not in out.stderr


_BANNER_PATH = """
import sys
from dashboard.core.policy import load_policy
from dashboard.service import gate_release
from dashboard.store.db import Store
import dashboard.ui.components, dashboard.ui.data, dashboard.ui.errors, dashboard.ui.identity, dashboard.ui.state
import dashboard.core.render, dashboard.ui.sentences, dashboard.store.cases
store = Store(sys.argv[1], read_only=True)
d = gate_release(store, load_policy(sys.argv[2]), sys.argv[3])
print(d.digest, sorted(m for m in ("numpy", "pandas", "pyarrow", "scipy") if m in sys.modules))
"""


def test_a_cached_decision_is_served_without_numpy_pandas_or_pyarrow(demo_store: Store,
                                                                     tmp_path_factory: pytest.TempPathFactory) -> None:
    """Test that the modules the Overview needs before its decision banner, and serving a decision from the
    store.s decision cache, import neither numpy, pandas, pyarrow nor scipy (each costs 0.05-0.3 s of a
    fresh dashboard's first page; issue 15), and that the served decision is the one the judgement gave."""
    from dashboard import demo
    from dashboard.core.policy import load_policy
    from dashboard.service import gate_release
    from tests.conftest import demo_copy

    path = demo_copy(demo_store, tmp_path_factory, "speed3")
    policy = Path(__file__).resolve().parent.parent / "data" / "policies" / "case-management.yaml"
    candidate = demo.STORIES[-1].release_id
    store = Store(path)
    try:
        judged = gate_release(store, load_policy(str(policy)), candidate)  # judged and kept in the cache
    finally:
        store.close()
    out = subprocess.run([sys.executable, "-c", _BANNER_PATH, str(path), str(policy), candidate],
                         capture_output=True, text=True, check=True)
    digest, loaded = out.stdout.strip().split(" ", 1)
    assert digest == judged.digest
    assert loaded == "[]", f"imported before the banner: {loaded}"
