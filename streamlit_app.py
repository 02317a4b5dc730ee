"""Entry point: `streamlit run streamlit_app.py`. Page setup and navigation only.

The pages live in explorer/ui/ (one module per page); see explorer/ui/__init__.py.
"""

import os

# Before torch is imported anywhere (see explorer/__init__.py): OpenMP threads spin only briefly
# at a barrier, then sleep.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "10000")

import importlib  # noqa: E402
import sys  # noqa: E402

import streamlit as st  # noqa: E402

from explorer.ui import explorer_page  # noqa: E402
from explorer.ui.background import freeze_startup_heap  # noqa: E402
from explorer.ui.common import APP_TITLE, guarded, page_style  # noqa: E402

freeze_startup_heap()  # once per process: Streamlit's collection after each run stays cheap

st.set_page_config(page_title=APP_TITLE, page_icon=":material/blur_on:", layout="wide",
                   initial_sidebar_state="auto")  # collapsed on phones
page_style()


def _lazy(module: str, guard: bool = False):
    """The ``render`` of ``explorer.ui.<module>``, imported on the page's first visit: the first
    load then imports the explorer page only (the lesson, study and Sweeps pages pull in
    matplotlib, scipy.stats and pandas)."""
    def render() -> None:
        first = f"explorer.ui.{module}" not in sys.modules
        fn = importlib.import_module(f"explorer.ui.{module}").render
        if first:  # its imports join the startup heap kept out of the collector's view
            freeze_startup_heap(again=True)
        (guarded(fn) if guard else fn)()
    render.__name__ = render.__qualname__ = f"render_{module}"
    return render


pages = [
    st.Page(explorer_page.render, title="Explorer", icon=":material/visibility:",
            url_path="explorer", default=True),
    st.Page(_lazy("compare_page"), title="Compare models", icon=":material/compare:",
            url_path="compare"),
    st.Page(_lazy("sweeps", guard=True), title="Sweeps", icon=":material/monitoring:",
            url_path="sweeps"),
    st.Page(_lazy("lesson_page", guard=True), title="Lessons", icon=":material/school:",
            url_path="lesson"),
    st.Page(_lazy("poll_page", guard=True), title="Join a class poll",
            icon=":material/how_to_vote:", url_path="poll"),
    st.Page(_lazy("study_page"), title="Study (participant)", icon=":material/person:",
            url_path="study"),
    st.Page(_lazy("study_admin"), title="Studies (researcher)", icon=":material/science:",
            url_path="study-admin"),
]
st.navigation(pages).run()
