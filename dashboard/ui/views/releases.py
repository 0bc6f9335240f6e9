"""Releases: what the store holds, with each manifest's digest."""

import pandas as pd
import streamlit as st

from dashboard.ui.data import store

st.title("Releases")
rows = store().releases()
if not rows:
    st.info("No release is stored yet. Load one with `readiness ingest FILE --release ID --manifest FILE`.")
else:
    st.dataframe(
        pd.DataFrame([r.model_dump() for r in rows]),
        hide_index=True,
        use_container_width=True,
    )
