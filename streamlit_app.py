"""Entry point: `streamlit run streamlit_app.py`. Page setup and navigation only.

The pages live in explorer/ui/ (one module per page); see explorer/ui/__init__.py.
"""

import os

# Before torch is imported anywhere (see explorer/__init__.py): OpenMP threads sleep, not spin.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import streamlit as st  # noqa: E402

from explorer.ui import (compare_page, explorer_page, lesson_page, study_admin,  # noqa: E402
                         study_page, sweeps)
from explorer.ui.background import freeze_startup_heap  # noqa: E402
from explorer.ui.common import APP_TITLE, guarded, page_style  # noqa: E402

freeze_startup_heap()  # once per process: Streamlit's collection after each run stays cheap

st.set_page_config(page_title=APP_TITLE, page_icon=":material/blur_on:", layout="wide",
                   initial_sidebar_state="auto")  # collapsed on phones
page_style()


pages = [
    st.Page(explorer_page.render, title="Explorer", icon=":material/visibility:",
            url_path="explorer", default=True),
    st.Page(compare_page.render, title="Compare models", icon=":material/compare:",
            url_path="compare"),
    st.Page(guarded(sweeps.render), title="Sweeps", icon=":material/monitoring:",
            url_path="sweeps"),
    st.Page(guarded(lesson_page.render), title="Lessons", icon=":material/school:",
            url_path="lesson"),
    st.Page(study_page.render, title="Study (participant)", icon=":material/person:",
            url_path="study"),
    st.Page(study_admin.render, title="Studies (researcher)", icon=":material/science:",
            url_path="study-admin"),
]
st.navigation(pages).run()
