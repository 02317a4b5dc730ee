"""Human-perception studies: specification, frozen stimuli, storage, participant sessions,
simulated participants and analysis. Nothing here imports streamlit (the pages are in
explorer/ui/study_page.py and explorer/ui/study_admin.py)."""

__all__ = ["spec", "tasks", "records", "stimuli", "storage", "session", "simulate", "analysis", "cli"]
