"""The one rendering path for untrusted text in Markdown (dashboard and Markdown report).

Backslash escapes are not enough: GFM renderers (remark-gfm in Streamlit, and others) find autolink literals
(`https://...`, `www....`, `eve@example.com`) in the text *after* escapes are resolved, and entities are decoded
before that too. The only CommonMark construct whose content is never parsed for links, e-mail addresses, math,
HTML, emphasis or Streamlit directives is a code span, so untrusted text is written as one: a backtick fence longer
than any backtick run in the text, with one space of padding (which CommonMark strips), line breaks as spaces.
"""

from __future__ import annotations

import re


def md_text(text: object, table_cell: bool = False) -> str:
    """`text` as an inline Markdown code span that shows exactly the text and can produce no link, autolink,
    e-mail link, math, HTML or directive. `table_cell`: also escape `|` (GFM tables split cells on it even inside
    code spans, and render `\\|` there as `|`). Empty text gives an empty string."""
    s = str(text).replace("\r\n", " ").replace("\r", " ").replace("\n", " ")
    if not s:
        return ""
    if table_cell:
        s = s.replace("|", "\\|")
    fence = "`" * (max((len(run) for run in re.findall(r"`+", s)), default=0) + 1)
    return f"{fence} {s} {fence}"
