"""Attribution-robustness explorer: metrics, attributions, attacks and a Streamlit app.

See ../shared/SPEC.md for what is computed and README.md for how to run it.
"""

import os as _os

# OpenMP threads that sleep instead of spinning at barriers. The app runs torch from several
# threads at once (sessions, background prefetch) and often shares its cores; with spinning
# waits every parallel op then stalls on a descheduled thread (measured here: compare() on a
# 224×224 pair, 2 threads, loaded machine: 477 ms spinning, 37 ms passive). Set before torch is
# imported; a value already in the environment wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
