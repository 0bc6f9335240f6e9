"""Errors that name exactly what was wrong: the file, the line or record, and the field.

Every error the project raises on purpose is a `ReadinessError`: `str(e)` is the message for the user and
`e.exit_code` the CLI's exit code, so the CLI and the dashboard show them the same way. `InputRefused` (a data
problem, nothing written) and `UsageError` (called wrongly) are its subclasses.

Input files are read through `read_input_bytes` / `read_input_text` / `check_input_file` only: they accept
regular files of bounded size (never a FIFO, a device such as /dev/zero, or a directory) and refuse anything
else with a clear message, so no input can hang the process or make it read without end.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Limits on input files (documented in README.md and docs/security.md).
MAX_DOCUMENT_BYTES = 16 << 20  # a manifest, policy, evidence, trusted-reviewers file, envelope or bundle
MAX_TOOL_FILE_BYTES = 256 << 20  # an eval tool's results file (read whole: JSON, lm-eval JSONL, Inspect zip)
MAX_NESTING = 64  # JSON/YAML nesting depth of a document (manifest, policy, evidence)
MAX_NODES = 2_000_000  # values in a document, counting each use of a YAML alias


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input: where it is and what is wrong."""

    source: str
    location: str  # "line 12", "record 5", "row 3" or "" for the whole file
    field: str  # dotted field path, or "" when the whole record / file is wrong
    message: str

    def __str__(self) -> str:
        where = ":".join(p for p in (self.source, self.location) if p)
        what = f"{self.field}: {self.message}" if self.field else self.message
        return f"{where}: {what}" if where else what


class ReadinessError(Exception):
    """The base of every error Readiness reports to a user: `str(e)` is the message, `exit_code` the CLI's code."""

    exit_code: int = 2

    def __init__(self, message: str = ""):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(ReadinessError):
    """The command was called wrongly (exit 2)."""

    exit_code = 2


class InputRefused(ReadinessError):
    """A data problem: nothing was written. The CLI maps it to exit code 1 (2 for the verdict commands)."""

    exit_code = 1

    def __init__(self, problems: list[Problem] | str):
        if isinstance(problems, str):
            problems = [Problem("", "", "", problems)]
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class UnknownFormat(InputRefused):
    """A record in a format version this readiness does not read (newer, or not this kind of record)."""


def _refused(path: str | Path, message: str) -> InputRefused:
    return InputRefused([Problem(str(path), "", "", message)])


def _open_regular(path: str | Path, what: str) -> tuple[int, int]:
    """(fd, size) of a regular file opened for reading; never blocks on a FIFO, never opens a device."""
    try:
        # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError as e:
        raise _refused(path, f"cannot read {what}: no such file") from e
    except OSError as e:
        raise _refused(path, f"cannot read {what}: {e.strerror or e}") from e
    try:
        st = os.fstat(fd)
    except OSError as e:
        os.close(fd)
        raise _refused(path, f"cannot read {what}: {e.strerror or e}") from e
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        kind = ("a directory" if stat.S_ISDIR(st.st_mode) else "a pipe (FIFO)" if stat.S_ISFIFO(st.st_mode)
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "not a regular file")
        raise _refused(path, f"cannot read {what}: it is {kind}; only regular files are read")
    return fd, st.st_size


def check_input_file(path: str | Path, what: str = "file", limit: int | None = None) -> int:
    """The size of `path` if it is a regular file (of at most `limit` bytes), else InputRefused."""
    fd, size = _open_regular(path, what)
    os.close(fd)
    if limit is not None and size > limit:
        raise _refused(path, f"cannot read {what}: {size:,} bytes is more than the limit of {limit:,} bytes")
    return size


def read_input_bytes(path: str | Path, what: str = "file", limit: int = MAX_DOCUMENT_BYTES) -> bytes:
    """The bytes of a regular file of at most `limit` bytes, else InputRefused naming the file and why."""
    fd, size = _open_regular(path, what)
    try:
        if size > limit:
            raise _refused(path, f"cannot read {what}: {size:,} bytes is more than the limit of {limit:,} bytes")
        chunks, total = [], 0
        while True:  # never trust st_size alone: read at most limit + 1 bytes
            try:
                block = os.read(fd, min(1 << 20, limit + 1 - total))
            except OSError as e:
                raise _refused(path, f"cannot read {what}: {e.strerror or e}") from e
            if not block:
                break
            chunks.append(block)
            total += len(block)
            if total > limit:
                raise _refused(path, f"cannot read {what}: more than the limit of {limit:,} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


def decode_text(data: bytes, source: str | Path, what: str = "file") -> str:
    """UTF-8 text (a leading byte-order mark is dropped); UTF-16 and other encodings are refused clearly."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _refused(source, f"cannot read {what}: it is UTF-16 text; save it as UTF-8")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise InputRefused([Problem(str(source), f"line {line}", "",
                                    f"cannot read {what}: not UTF-8 text (byte 0x{data[e.start]:02x}); "
                                    "save it as UTF-8")]) from e


def read_input_text(path: str | Path, what: str = "file", limit: int = MAX_DOCUMENT_BYTES) -> str:
    """A bounded regular UTF-8 text file's content, or InputRefused naming the file and why it cannot be read."""
    return decode_text(read_input_bytes(path, what, limit), path, what)


def read_text(path: str | Path, what: str = "file") -> str:
    """A UTF-8 text file's content (regular file, at most MAX_DOCUMENT_BYTES), or InputRefused."""
    return read_input_text(path, what)


def nesting_depth_exceeds(value: Any, limit: int = MAX_NESTING, max_nodes: int = MAX_NODES) -> bool:
    """True when lists/dicts nest deeper than `limit`, or the value holds more than `max_nodes` nodes counted
    with repeats (YAML aliases can make a small file a huge or cyclic value). Iterative: safe on any input."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    visited = 0
    while stack:
        item, depth = stack.pop()
        visited += 1
        if visited > max_nodes:
            return True
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth >= limit:
            return True
        stack.extend((c, depth + 1) for c in children)
    return False


def too_deep(source: str | Path, location: str = "") -> InputRefused:
    return InputRefused([Problem(str(source), location, "",
                                 f"nested more than {MAX_NESTING} levels deep, or more than {MAX_NODES:,} values "
                                 "once YAML aliases are expanded (refused)")])


def parse_json(text: str | bytes, source: str | Path, location: str = "", walk: bool = True) -> Any:
    """JSON with a clear error for malformed or too deeply nested input (never a RecursionError). `walk=False`
    skips the depth walk (for large eval-tool files, whose readers guard each record themselves)."""
    try:
        value = json.loads(text)
    except RecursionError as e:
        raise too_deep(source, location) from e
    except json.JSONDecodeError as e:
        raise InputRefused([Problem(str(source), location or f"line {e.lineno}", "",
                                    f"invalid JSON: {e.msg} (column {e.colno})")]) from e
    except (UnicodeDecodeError, ValueError) as e:
        raise InputRefused([Problem(str(source), location, "", f"invalid JSON: {e}")]) from e
    if walk and nesting_depth_exceeds(value):
        raise too_deep(source, location)
    return value


def parse_yaml(text: str, source: str | Path) -> Any:
    """YAML (safe loader) with a clear error for malformed or too deeply nested input."""
    import yaml

    try:
        value = yaml.safe_load(text)
    except RecursionError as e:
        raise too_deep(source) from e
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        loc = f"line {mark.line + 1}" if mark is not None else ""
        raise InputRefused([Problem(str(source), loc, "", f"invalid YAML: {getattr(e, 'problem', None) or e}")]) from e
    except (ValueError, OverflowError) as e:  # e.g. a timestamp out of range
        raise InputRefused([Problem(str(source), "", "", f"invalid YAML: {e}")]) from e
    if nesting_depth_exceeds(value):
        raise too_deep(source)
    return value
