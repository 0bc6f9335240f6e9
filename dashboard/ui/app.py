"""Entry point of the Streamlit dashboard: page configuration and navigation only."""

import streamlit as st

st.set_page_config(page_title="Readiness", page_icon=":material/verified:", layout="wide")

pages = [
    st.Page("pages/releases.py", title="Releases", icon=":material/inventory_2:", default=True),
]
st.navigation(pages).run()
