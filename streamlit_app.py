"""Entry point: `streamlit run streamlit_app.py`. Page setup and navigation only.

The pages live in explorer/ui/ (one module per page); see explorer/ui/__init__.py.
"""

import os

# Before torch is imported anywhere (see explorer/__init__.py): OpenMP threads sleep, not spin.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import streamlit as st  # noqa: E402

from explorer.ui import (compare_page, explorer_page, lesson_page, poll_page,  # noqa: E402
                         study_admin, study_page, sweeps)
from explorer.ui.common import APP_TITLE, guarded, page_style  # noqa: E402

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
    st.Page(guarded(poll_page.render), title="Join a class poll", icon=":material/how_to_vote:",
            url_path="poll"),
    st.Page(study_page.render, title="Study (participant)", icon=":material/person:",
            url_path="study"),
    st.Page(study_admin.render, title="Studies (researcher)", icon=":material/science:",
            url_path="study-admin"),
]
st.navigation(pages).run()
