"""Short plain explanations shown next to the scores and the attack, with the citations.

Metric names, formulas and one-line descriptions come from ``explorer.metrics.METRICS``; attack
and method descriptions from their registries. Only the connecting prose lives here.
"""

from __future__ import annotations

import streamlit as st

from explorer import attacks, attributions, metrics

from .common import GHORBANI, KAMATH

__all__ = ["attack_help", "citation", "metrics_help", "region_caption"]


def metrics_help() -> None:
    with st.expander("What do these scores mean?", icon=":material/help:"):
        st.markdown(
            "An attribution map ranks the pixels by how much they matter for the prediction. "
            "An attack on the attribution nudges every pixel by at most ε so that the "
            "prediction stays the same but the map changes. The classical scores ask whether "
            "the **same** pixels stay on top (top-k intersection) or the whole ranking stays "
            "(Spearman, Kendall). Kamath et al. argue this is too strict: a top pixel that "
            "moved to its neighbour still points at the same part of the image. **LENS** "
            "counts a top pixel as kept when it lies within w pixels of a top pixel of the "
            "other map; **diverse** top-k first spreads the k picks at least w+1 pixels apart, "
            "so that one blob cannot fill the whole top-k. Compare the attack's column with "
            "random sign noise at the same ε: under the classical scores the two often look "
            "alike, under LENS they separate (the paper's first claim).")
        rows = ["| metric | formula | meaning |", "|---|---|---|"]
        for info in metrics.METRICS.values():
            formula = info.formula.replace("|", "\\|")
            rows.append(f"| {info.name} | `{formula}` | {info.description} |")
        st.markdown("\n".join(rows))
        st.caption("a: the original map, b: the perturbed map; S_k: the top-k pixels; "
                   "N_w: the (2w+1)×(2w+1) neighbourhood; D_k: the diverse top-k; ↑ higher "
                   "means more similar, ↓ lower does. w-LENS-Spearman / -Kendall are this app's "
                   f"definition (the paper names them without a formula we could check). "
                   f"After {KAMATH}.")


def attack_help() -> None:
    with st.expander("What do the attacks and methods do?", icon=":material/help:"):
        st.markdown(
            "The attacks follow Ghorbani et al.: repeated signed gradient steps of size α inside "
            "the ℓ∞ ball of radius ε, keeping only iterates whose predicted label is unchanged, "
            "and returning the one with the lowest selection measure. ReLU networks have zero "
            "second derivatives, so the attack's gradient is taken through a copy of the model "
            "with ReLU replaced by softplus(β); everything shown is computed on the real model. "
            "Random sign noise at the same ε is the baseline a real attack must beat.")
        st.markdown("\n".join(f"- **{a.name}**: {a.description}"
                              for a in attacks.ATTACKS.values()))
        st.markdown("\n".join(f"- **{m.name}**: {m.description}"
                              for m in attributions.METHODS.values()))
        st.caption(f"After {GHORBANI}.")


def citation() -> None:
    with st.expander("Citation", icon=":material/menu_book:"):
        st.markdown(f"- {KAMATH}\n- {GHORBANI}")


def region_caption(region) -> str:
    """The caption under pictures that outline the targeted attack's region."""
    r0, r1, c0, c1 = region
    return (f"Cyan outline: the targeted attack's region, rows {r0}–{r1} and columns {c0}–{c1} "
            f"({(r1 - r0 + 1) * (c1 - c0 + 1)} pixels), into which it pushes the attribution "
            "mass; drawn on the original image and on both maps.")
