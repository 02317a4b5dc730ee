"""Human-perception studies: specification, frozen stimuli, storage, participant sessions,
simulated participants and analysis, and the lesson page's class polls (``poll``, on the same
storage). Nothing here imports streamlit (the pages are in explorer/ui/study_page.py,
explorer/ui/study_admin.py, explorer/ui/poll_page.py and explorer/ui/lesson_poll.py)."""

__all__ = ["spec", "tasks", "records", "stimuli", "storage", "poll", "session", "simulate",
           "analysis", "cli"]
