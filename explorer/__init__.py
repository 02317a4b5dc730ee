"""Attribution-robustness explorer: metrics, chance levels, attributions, attacks, batch
evaluation, studies, lessons and a Streamlit app.

What is computed: docs/spec.md (definitions) and docs/metrics.md (every metric's formula); how
to run it: README.md. The public modules are listed in ``__all__``::

    from explorer import attacks, attributions, chance, data, metrics, models
"""

import importlib as _importlib
import os as _os

# OpenMP threads that spin only briefly at a barrier, then sleep. The app runs torch from several
# threads at once (sessions, background prefetch) and often shares its cores; with long spinning
# waits every parallel op then stalls on a descheduled thread (compare() on a 224×224 pair, 2
# threads, loaded machine: 477 ms spinning, 37 ms passive), while sleeping at once (passive)
# halves the speed of a 224×224 attack on a quiet 2-core machine (47–50 s against 25–27 s per
# 100 steps). A short spin (GOMP_SPINCOUNT=10000) keeps the quiet-machine speed and stays
# close to passive under load (benchmarks/README.md, ImageNet attack step). Set before torch is
# imported; a value already in the environment (OMP_WAIT_POLICY or GOMP_SPINCOUNT) wins.
if "OMP_WAIT_POLICY" not in _os.environ:
    _os.environ.setdefault("GOMP_SPINCOUNT", "10000")

__version__ = "0.1.0"

__all__ = [
    "attack_selection", "attacks", "attributions", "chance", "cost", "data", "data_import",
    "evaluation", "jobs", "lessons", "metrics", "models", "params", "study", "surrogate", "train",
    "uploads", "viz", "viz_charts", "viz_sweeps",
]


def __getattr__(name: str):
    # Submodules load on first use: every `python -m explorer` command and the app import this
    # package first, and the submodules pull in torch, plotly or SQLAlchemy.
    if name in __all__:
        return _importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
