"""Errors that name exactly what was wrong: the file, the line or record, and the field."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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
        return f"{where}: {what}"


class InputRefused(Exception):
    """A data problem: nothing was written. The CLI maps it to exit code 1."""

    def __init__(self, problems: list[Problem] | str):
        if isinstance(problems, str):
            problems = [Problem("", "", "", problems)]
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def read_text(path: str | Path, what: str = "file") -> str:
    """A UTF-8 text file's content, or InputRefused naming the file and why it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputRefused([Problem(str(path), "", "", f"cannot read {what}: {e}")]) from e
