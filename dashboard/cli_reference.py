"""The CLI reference (docs/cli.md), generated from the argument parser so it cannot drift from the code.

`python -m dashboard.cli_reference > docs/cli.md` rewrites it; a test checks the committed file is current.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator

HEADER = ("# CLI reference\n\nGenerated from the code by `python -m dashboard.cli_reference > docs/cli.md`; a test "
          "fails when it is out of date. Exit codes: 0 ok, 1 refused or a negative verdict, 2 usage or input error "
          "(see the README).\n")


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...],
                                                                                            argparse.ArgumentParser]]:
    """Every command that runs something, as (path, its parser), in the order the parser defines them."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
        return
    for action in subs:
        for name, sub in action.choices.items():
            yield from commands(sub, (*path, name))


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _option(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"`{action.metavar or action.dest}`" + (" ..." if action.nargs in ("+", "*") else "")
    flag = " / ".join(f"`{o}`" for o in action.option_strings)
    if action.nargs == 0:
        return flag
    if action.choices:
        return f"{flag} `{'|'.join(str(c) for c in action.choices)}`"
    return f"{flag} `{action.metavar or action.dest.upper()}`"


def reference(parser: argparse.ArgumentParser) -> str:
    out = [HEADER, "Global options, before the command:", ""]
    out += [f"- {_cell(_option(a))}: {_cell(a.help or '')}" for a in parser._actions
            if a.option_strings and not isinstance(a, argparse._HelpAction)] + [""]
    for path, sub in commands(parser):
        out += [f"## `{parser.prog} {' '.join(path)}`", "", _cell(sub.description or ""), "",
                "| argument | required | default | what |", "|---|---|---|---|"]
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            required = "yes" if action.required or not action.option_strings and action.nargs not in ("?", "*") else ""
            default = "" if action.default in (None, False, argparse.SUPPRESS) else f"`{action.default}`"
            out.append(f"| {_cell(_option(action))} | {required} | {default} | {_cell(action.help or '')} |")
        out.append("")
    return "\n".join(out)


def options(parser: argparse.ArgumentParser) -> dict[tuple[str, ...], list[str]]:
    """Each command's long options (for the docs tests)."""
    return {path: [o for a in sub._actions for o in a.option_strings if o.startswith("--") and o != "--help"]
            for path, sub in commands(parser)}


if __name__ == "__main__":
    from dashboard.cli import build_parser

    sys.stdout.write(reference(build_parser()))
