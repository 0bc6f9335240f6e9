"""The dashboard's server process (`readiness serve`): `python -m dashboard.ui.launch run dashboard/ui/app.py ...`.

It imports the modules every first page needs (the gate engine, its Pydantic models, the store: ~0.25 s on this
2-core machine) before Streamlit starts, so the first viewer of a fresh server does not wait for them (issue 15),
then runs `streamlit` with the arguments given, as `python -m streamlit` would. Only modules that do not touch
Streamlit are preloaded: a page module's `st.cache_data` must be created inside Streamlit's runtime.
"""

from __future__ import annotations

import importlib

PRELOADED = ("dashboard.service", "dashboard.core.render", "dashboard.core.reviews", "dashboard.store.postgres")


def main() -> None:
    for name in PRELOADED:
        importlib.import_module(name)
    from streamlit.web.cli import main as streamlit_main

    streamlit_main(prog_name="streamlit")


if __name__ == "__main__":
    main()
