"""Attribution-robustness explorer: metrics, attributions, attacks and a Streamlit app.

See ../shared/SPEC.md for what is computed and README.md for how to run it.
"""

__version__ = "0.1.0"
