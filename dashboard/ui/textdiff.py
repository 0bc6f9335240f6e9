"""The dashboard's one text diff (Cases page, Canary & shadow page): two untrusted texts split into sentences and
compared line by line, shown as a code block (text, never interpreted)."""

from __future__ import annotations

import difflib
import re

import streamlit as st


def chunks(text: str) -> list[str]:
    """Lines, each split after sentence punctuation, so a diff of long one-line answers stays readable."""
    lines = str(text).splitlines() or [""]
    return [s for line in lines for s in re.split(r"(?<=[.!?;])\s+", line)]


def unified(old: str, new: str, old_name: str, new_name: str) -> str:
    return "\n".join(difflib.unified_diff(chunks(old), chunks(new), old_name, new_name, lineterm="", n=2))


def show_text_diff(old: str, new: str, old_name: str, new_name: str) -> None:
    """The diff as a code block with a caption saying how to read it."""
    st.code(unified(old, new, old_name, new_name), language="diff")  # shown as text, never interpreted
    st.caption(f"Lines starting with − are only in the {old_name}'s output, + only in the {new_name}'s.")
