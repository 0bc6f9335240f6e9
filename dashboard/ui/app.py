"""Entry point of the Streamlit dashboard: page configuration, the shared sidebar selection, navigation."""

import streamlit as st

from dashboard.ui import data, identity, state
from dashboard.ui.errors import shown_plainly

st.set_page_config(page_title="Readiness", page_icon=":material/verified:", layout="wide")

pages = {
    "Decide": [
        st.Page("views/overview.py", title="Overview", icon=":material/verified:", default=True),
        st.Page("views/releases.py", title="Releases", icon=":material/view_week:"),
        st.Page("views/gates.py", title="Gates", icon=":material/checklist:"),
        st.Page("views/review.py", title="Review", icon=":material/draw:"),
        st.Page("views/train.py", title="Release train", icon=":material/train:"),
    ],
    "Compare": [
        st.Page("views/slices.py", title="Slices", icon=":material/grid_on:"),
        st.Page("views/quality_rag.py", title="Quality & RAG", icon=":material/fact_check:"),
        st.Page("views/agent_tools.py", title="Agent & tools", icon=":material/smart_toy:"),
        st.Page("views/security.py", title="Security & privacy", icon=":material/shield:"),
        st.Page("views/cost_latency.py", title="Cost & latency", icon=":material/speed:"),
        st.Page("views/cases.py", title="Cases", icon=":material/list_alt:"),
        st.Page("views/datasets.py", title="Datasets & history", icon=":material/history:"),
    ],
    "After the gate": [
        st.Page("views/canary.py", title="Canary & shadow", icon=":material/alt_route:"),
    ],
    "Data": [
        st.Page("views/load.py", title="Load data", icon=":material/upload:"),
    ],
}
identity.require_login()  # only with [auth] in .streamlit/secrets.toml (dashboard/ui/identity.py)
navigation = st.navigation(pages, expanded=True)  # every page visible: a meeting must not hunt for "View more"
try:
    with st.sidebar:
        st.title("Readiness")
        identity.sidebar()
        with shown_plainly(compact=True):
            state.render_sidebar()
    with shown_plainly():
        navigation.run()
finally:
    data.release()  # the store is never held between reruns (dashboard/ui/data.py)
