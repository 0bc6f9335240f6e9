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
