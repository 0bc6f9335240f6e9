"""The dashboard's only way to the store: one cached connection, cached query results."""

from __future__ import annotations

import streamlit as st

from dashboard.store.db import Store, default_db_path


@st.cache_resource
def store() -> Store:
    return Store(default_db_path(), read_only=False)
