"""How the embedded store's DuckDB file is opened, held and released when several processes share it.

DuckDB lets one process write a file, or any number of processes read it, and refuses a conflicting open at once
("Conflicting lock is held"). Here a conflicting open is retried until a bounded wait runs out
(`$READINESS_LOCK_TIMEOUT` seconds; 60 for commands, 10 for the dashboard, which shows a spinner meanwhile), with
one notice while waiting; only then is the store reported busy. Nothing is half-written by waiting: every write is
one DuckDB transaction, committed or rolled back as a whole.

Within one process DuckDB shares one database instance between connections of the same mode and refuses to mix
read-only and read-write connections to a file: the per-file gate below makes them take turns (readers join an
open read-write instance; a writer waits, bounded, for the process's readers to close theirs).
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import duckdb

ENV_TIMEOUT = "READINESS_LOCK_TIMEOUT"
ENV_MEMORY = "READINESS_DUCKDB_MEMORY"
ENV_TEMP = "READINESS_DUCKDB_TEMP"
# DuckDB's buffer memory per process (issue 15): not its default of 80% of RAM, so a 5M-case ingest or gate spills
# to disk instead of growing past what a shared 2-core machine can give it. The rest of the process (Python, Arrow
# results) comes on top; 1 GiB kept every 2x5M-case step under 2 GiB peak (docs/benchmarks.md, fourth pass).
DEFAULT_MEMORY = "1GiB"
_SIZE = re.compile(r"[0-9]+(\.[0-9]+)?\s*([KMGT]i?B|B)", re.IGNORECASE)
_default_timeout = 60.0
_notice: Callable[[str], None] | None = None


class Busy(Exception):
    """Internal: the wait for the store ran out (the store module turns it into StoreUnavailable)."""


def configure(default_timeout: float | None = None, notice: Callable[[str], None] | None = None) -> None:
    """Set this process's default wait (overridden by $READINESS_LOCK_TIMEOUT) and what shows the waiting notice."""
    global _default_timeout, _notice
    if default_timeout is not None:
        _default_timeout = default_timeout
    if notice is not None:
        _notice = notice


def lock_timeout() -> float:
    """Seconds to wait for another writer: $READINESS_LOCK_TIMEOUT, else this process's default."""
    raw = os.environ.get(ENV_TIMEOUT, "").strip()
    if raw:
        try:
            return max(0.0, float(raw))
        except ValueError:
            pass
    return _default_timeout


def duckdb_settings(path: str) -> dict[str, str]:
    """DuckDB's memory limit and spill folder for a store file: $READINESS_DUCKDB_MEMORY (a DuckDB size, e.g.
    "2GiB" or "800MB"; default 1GiB) and $READINESS_DUCKDB_TEMP (a folder; default `<store file>.tmp`, DuckDB's
    own choice, made explicit). An in-memory store gets the limit only."""
    memory = os.environ.get(ENV_MEMORY, "").strip() or DEFAULT_MEMORY
    if not _SIZE.fullmatch(memory):
        from dashboard.core.errors import UsageError

        raise UsageError(f"${ENV_MEMORY}={memory!r}: give a size such as 1GiB, 2GB or 800MB")
    settings = {"memory_limit": memory}
    if path != ":memory:":
        settings["temp_directory"] = os.environ.get(ENV_TEMP, "").strip() or f"{path}.tmp"
    return settings


def _notify(message: str) -> None:
    if _notice is not None:
        try:
            _notice(message)
        except Exception:  # noqa: BLE001 - a notice never stops a write
            pass


@dataclass
class _Gate:
    """One file's in-process turn-taking between read-only and read-write connections."""

    cond: threading.Condition = field(default_factory=threading.Condition)
    mode: str = ""
    count: int = 0
    writers_waiting: int = 0
    holders: dict[int, int] = field(default_factory=dict)
    write_lock: threading.Lock = field(default_factory=threading.Lock)

    def acquire(self, read_only: bool, deadline: float) -> bool:
        """The connection mode to open with: False (read-write) or True (read-only); Busy when the wait runs out."""
        me = threading.get_ident()
        with self.cond:
            if read_only:
                while not self._reader_may(me):
                    if not self.cond.wait(max(0.0, deadline - time.monotonic())) and time.monotonic() >= deadline:
                        raise Busy("the store is being written by another session of this process")
                mode = self.mode if self.count > 0 else "r"
            else:
                self.writers_waiting += 1
                try:
                    while self.count > 0 and self.mode != "w":
                        if not self.cond.wait(max(0.0, deadline - time.monotonic())) and time.monotonic() >= deadline:
                            raise Busy("the store is still read by other sessions of this process")
                finally:
                    self.writers_waiting -= 1
                mode = "w"
            self.mode = mode
            self.count += 1
            self.holders[me] = self.holders.get(me, 0) + 1
            self.cond.notify_all()  # readers waiting behind this writer may join it
            return mode == "r"

    def _reader_may(self, me: int) -> bool:
        """A reader joins an open read-write instance, or other readers unless a writer waits (a thread that
        already holds the file never waits for itself); an idle file lets waiting writers go first."""
        if self.count == 0:
            return self.writers_waiting == 0
        return self.mode == "w" or self.writers_waiting == 0 or me in self.holders

    def release(self) -> None:
        me = threading.get_ident()
        with self.cond:
            self.count -= 1
            left = self.holders.get(me, 1) - 1
            if left > 0:
                self.holders[me] = left
            else:
                self.holders.pop(me, None)
            if self.count == 0:
                self.mode = ""
            self.cond.notify_all()


_gates: dict[str, _Gate] = {}
_gates_lock = threading.Lock()


def _gate(path: str) -> _Gate:
    key = os.path.realpath(path)
    with _gates_lock:
        return _gates.setdefault(key, _Gate())


def _is_conflict(e: BaseException) -> bool:
    text = str(e).lower()
    return "lock" in text or "different configuration" in text


class Held:
    """One open connection to the store file; `close()` closes it and lets the next process (or mode) in."""

    def __init__(self, con: duckdb.DuckDBPyConnection, gate: _Gate | None, read_only: bool):
        self.con = con
        self.read_only = read_only
        self._gate = gate
        self._closed = False
        # Serialises this process's write transactions on the file (DuckDB would abort one of two that conflict).
        self.write_lock = gate.write_lock if gate is not None else threading.Lock()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.con.close()
        finally:
            if self._gate is not None:
                self._gate.release()


def open_file(path: str, read_only: bool, timeout: float | None = None) -> Held:
    """Open the store file, waiting (bounded) for a conflicting process or in-process mode to finish.

    Raises Busy when the wait runs out, duckdb.IOException for anything else (not a DuckDB file, ...)."""
    config: dict[str, str | bool | int | float | list[str]] = {"autoinstall_known_extensions": "false",
                                                                **duckdb_settings(path)}
    if path == ":memory:":
        return Held(duckdb.connect(path, read_only=read_only, config=config), None, read_only)
    wait = lock_timeout() if timeout is None else timeout
    start = time.monotonic()
    deadline = start + wait
    gate = _gate(path)
    as_reader = gate.acquire(read_only, deadline)
    noticed = False
    pause = 0.02
    try:
        while True:
            try:
                con = duckdb.connect(path, read_only=as_reader, config=config)
                return Held(con, gate, as_reader)
            except (duckdb.IOException, duckdb.ConnectionException) as e:
                if not _is_conflict(e):
                    raise
                if time.monotonic() + pause > deadline:
                    raise Busy(f"the store {path} is open in another process that is writing it (or reading it, "
                               f"when this is a write); gave up after {time.monotonic() - start:.0f} s: try again, "
                               f"or set {ENV_TIMEOUT} to wait longer") from e
                if not noticed:
                    noticed = True
                    _notify(f"the store {path} is in use by another process; waiting up to {wait:g} s "
                            f"({ENV_TIMEOUT}) ...")
                time.sleep(pause)
                pause = min(pause * 1.5, 0.25)
    except BaseException:
        gate.release()
        raise
