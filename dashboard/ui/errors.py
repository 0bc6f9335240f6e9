"""No traceback ever reaches a user: project errors are shown as their plain message, a busy store as a sentence
saying what to do, anything else as a short notice with a reference; the details go to the server's log."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from dashboard.core import errors
from dashboard.store.db import StoreUnavailable

log = logging.getLogger("readiness.dashboard")
# The base class of the project's errors (str(e) is the message for the user); InputRefused before it exists.
PROJECT_ERRORS: tuple[type[Exception], ...] = (getattr(errors, "ReadinessError", errors.InputRefused),
                                               errors.InputRefused)


@contextmanager
def shown_plainly(compact: bool = False) -> Iterator[None]:
    """Run a page (or, `compact`, the sidebar); turn any exception into a plain message. Streamlit's own control
    flow (st.stop, st.rerun, st.switch_page) derives from BaseException and passes through."""
    from dashboard.ui import components as ui

    try:
        yield
    except StoreUnavailable as e:
        log.warning("store unavailable: %s", e)
        if compact:
            st.caption("The store is busy.")
            return
        st.error("The release store cannot be opened right now: another program is using it (for example a "
                 "`readiness ingest` that is running). Try again in a moment; if it stays busy, stop that program.",
                 icon=":material/hourglass_top:")
    except PROJECT_ERRORS as e:
        log.info("refused: %s", e)
        st.error(ui.esc(str(e)), icon=":material/error:")
    except Exception:
        ref = uuid.uuid4().hex[:8]
        log.exception("unexpected error (reference %s)", ref)
        st.error(f"Something went wrong while showing this page (reference {ref}). The details are in the "
                 "dashboard's server log; please report the reference.", icon=":material/error:")
