"""Compare models: the sidebar's model and a second one on the same image and attack.

The page's address holds its settings: the sidebar's configuration as on the explorer page
(``link.to_query``) plus ``vs``, the second model (:func:`compare_query` /
:func:`compare_from_query`). A one-line verdict at the top says which model's explanation is the
more robust under the attack, by the rule of :func:`verdict` (stated on the page).
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import streamlit as st
import torch

from explorer import attacks, chance, data, metrics, models, viz

from . import availability, controls, explain, flow, keys, link, panels
from .common import APP_TITLE, guarded
from .state import Config

__all__ = ["VERDICT_MARGIN", "compare_from_query", "compare_query", "default_partner", "render",
           "short_label", "verdict", "verdict_facts"]

VERDICT_MARGIN = 0.05  # normalised top-k intersections closer than this: "within noise"


def short_label(name: str) -> str:
    """Column title for a model: 'natural', 'PGD', or the registry name."""
    return {"pgd": "PGD", "natural": "natural"}.get(name, name)


def default_partner(model: str, usable: Sequence[str]) -> str | None:
    """The second model when the link names none: PGD beside natural, natural beside PGD, else
    the first other usable model (None when there is no other)."""
    others = [m for m in usable if m != model]
    preferred = {"natural": "pgd", "pgd": "natural"}.get(model)
    if preferred in others:
        return preferred
    return others[0] if others else None


# ------------------------------------------------------------------------------- the link

def compare_query(cfg: Config, partner: str, *, ran: bool = False) -> dict[str, str]:
    """The Compare page's query parameters: the configuration's link plus ``vs``."""
    return {**link.to_query(link.link_state(cfg, ran=ran)), "vs": partner}


def compare_from_query(params: Mapping[str, str], dataset: str, model: str,
                       usable: Sequence[str]) -> tuple[str | None, list[link.LinkProblem]]:
    """The second model a link names (None: not in the link, or not usable; then reported).

    The rest of the link is read by ``link.from_query`` as on every page."""
    vs = params.get("vs")
    if vs is None:
        return None, []
    allowed = [m for m in usable if m != model]
    if vs in allowed:
        return vs, []
    name = data.DATASETS[dataset].name
    if vs == model:
        why = "is the sidebar's model itself; compare it with another one"
    elif vs in [m.name for m in models.models_for(dataset)]:
        why = f"cannot be used here ({availability.model_hint(dataset, vs) or 'unavailable'})"
    else:
        why = f"is not a model of {name}"
    return None, [link.LinkProblem("vs", vs, why, f"allowed: {', '.join(allowed) or 'none'}",
                                   "using the default second model")]


# ------------------------------------------------------------------------------- the verdict

def normalised_intersection(value: float, k: int, n_pixels: int) -> float:
    """(I − c) / (1 − c) with c = k / n, the top-k intersection expected between two unrelated
    maps (two random k-subsets of n pixels share k²/n pixels on average): 0 is chance, 1 no
    change. At k = n every map pair scores 1 and the score says nothing (NaN)."""
    return float(chance.normalise(value, k / n_pixels))


def verdict(scores: Mapping[str, float], *, k: int, n_pixels: int, attack: str,
            margin: float = VERDICT_MARGIN) -> str:
    """One line: which model's explanation kept more of its top-k pixels under the attack.

    ``scores``: {model label: top-k intersection of its original and attacked maps at k} for
    two models. Rule: the normalised intersection (:func:`normalised_intersection`) is higher
    by at least ``margin``; a smaller difference is called within noise (one image and one
    attack run: differences that small move with the seed)."""
    (la, ia), (lb, ib) = list(scores.items())[:2]
    na, nb = (normalised_intersection(v, k, n_pixels) for v in (ia, ib))
    if na != na or nb != nb:
        return f"No verdict: at k = H·W = {k:,} every top-k set is the whole image."
    diff = na - nb
    if abs(diff) < margin:
        return (f"Within noise: under the {attack} the two models' explanations are about "
                f"equally robust (normalised top-k intersection {la} {na:.2f}, {lb} {nb:.2f}; "
                f"a difference below {margin}).")
    (better, nbest), (worse, nworst) = sorted(((la, na), (lb, nb)), key=lambda t: -t[1])
    return (f"The **{better}** model's explanation is the more robust under the {attack}: "
            f"normalised top-k intersection {nbest:.2f} against {nworst:.2f} for {worse}.")


def verdict_facts(scores: Mapping[str, float], *, k: int, n_pixels: int) -> str:
    """The raw numbers behind :func:`verdict`."""
    shown = ", ".join(f"{label} {v:.3f}" for label, v in scores.items())
    return (f"Top-k intersection at k = {k:,} of {n_pixels:,} pixels: {shown}; chance level "
            f"k/n = {k / n_pixels:.3f}.")


RULE = ("Verdict rule: each model's top-k intersection between its original and attacked map "
        "at the dataset's paper k, normalised as (I − k/n) / (1 − k/n) so that 0 is the chance "
        "level of unrelated maps and 1 no change; the higher one wins when the two differ by at "
        f"least {VERDICT_MARGIN}, else the result is within noise (one image, one attack run). "
        "Both models need a label-preserving perturbation for a verdict.")


# ------------------------------------------------------------------------------- the page

def _partner_control(cfg: Config, usable: list[str]) -> tuple[str | None, list]:
    """The "compared with" selector (its first value from the link's ``vs``)."""
    key = keys.compare_with(cfg.dataset)
    problems: list = []
    if keys.compare_link() not in st.session_state:
        query = {k: st.query_params[k] for k in st.query_params}
        vs, problems = compare_from_query(query, cfg.dataset, cfg.model, usable)
        st.session_state[keys.compare_link()] = tuple(problems)
        if vs is not None:
            st.session_state[key] = vs
    else:
        problems = list(st.session_state[keys.compare_link()])
    others = [m for m in usable if m != cfg.model]
    if not others:
        return None, problems
    if st.session_state.get(key) not in others:
        st.session_state[key] = default_partner(cfg.model, usable)
    labels = {m.name: m.label or m.name for m in models.models_for(cfg.dataset)}
    partner = st.columns([2, 3])[0].selectbox("Compared with", others, key=key,
                           format_func=lambda n: labels.get(n, n),
                           help="The first model is the one chosen in the sidebar.")
    return partner, problems


@guarded
def render() -> None:
    sb = controls.sidebar()
    cfg = sb.config
    device, info = controls.resolved_device(), data.DATASETS[cfg.dataset]
    st.markdown(f"#### {APP_TITLE}: compare models")
    usable = availability.usable_models(cfg.dataset)
    top = st.container()
    partner, vs_problems = _partner_control(cfg, usable)
    with top:
        controls.link_warning([*sb.problems, *vs_problems])
        verdict_slot = st.empty()
    st.caption("The same image, attribution method and attack on two models of the dataset: the "
               "model chosen in the sidebar and the one chosen here. Kamath et al. report that "
               "PGD-trained models have more robust attributions on small datasets.")
    if partner is None:
        st.info(f"{info.name} has {len(usable)} model(s) usable here; comparing needs two.",
                icon=":material/info:")
        return
    inp = flow.choose_input(sb)
    if inp is None:
        return
    clicked = st.button("Run the attack on both models", type="primary", key="cmp.run",
                        icon=":material/bolt:")
    autorun = st.session_state.pop(keys.autorun(), False)
    if autorun and not clicked and flow.attack_decision(cfg, device).action != "run":
        st.info("This link asks to run the attack on open; it takes a while here. Press **Run "
                "the attack on both models** to start it.", icon=":material/schedule:")
        autorun = False
    attack_name = attacks.ATTACKS[cfg.attack].name
    cols = st.columns(2, gap="medium")
    pairs, histories, outcomes, missing = [], {}, {}, []
    for col, name in zip(cols, (cfg.model, partner)):
        minfo = models.MODELS[(cfg.dataset, name)]
        with col:
            label = short_label(name)
            st.markdown(f"**{minfo.label or name}**")
            try:
                st.caption(controls.card_line(models.card(cfg.dataset, name)))
            except Exception as exc:  # noqa: BLE001
                st.caption(f"model card unreadable: {exc}")
            net = flow.load_model(cfg.dataset, name, device)
            if net is None:
                continue
            mcfg = dataclasses.replace(cfg, model=name)
            orig = flow.original_map(mcfg, device, inp)
            if orig is None:
                continue
            res = None
            if clicked or autorun or flow.attack_was_run(mcfg, device, inp):
                res = flow.run_attack(mcfg, device, inp, label=f"{label}: ")
            if res is None:
                st.caption(f"Prediction {flow.class_name(cfg.dataset, orig.label)} "
                           f"({100 * orig.conf:.1f}%). Not attacked yet.")
                fig, _ = viz.side_by_side(inp.x[0], None, orig.map, None, orig.rank, None,
                                          height=220, region=cfg.region)
                st.plotly_chart(fig, width="stretch", config={"displayModeBar": False},
                                key=keys.widget("cmp", "side", name))
                continue
            held = "label held" if res.label_kept and res.found else (
                "no label-preserving perturbation found" if not res.found else "label changed")
            st.caption(f"{flow.class_name(cfg.dataset, res.label_orig)} "
                       f"({100 * res.conf_orig:.1f}%) → "
                       f"{flow.class_name(cfg.dataset, res.label_adv)} "
                       f"({100 * res.conf_adv:.1f}%) · ‖x′ − x‖∞ = {res.linf:.3g} "
                       f"· {held}")
            fig, _ = viz.side_by_side(inp.x[0], res.x_adv, orig.map, res.map_adv,
                                      orig.rank, res.rank_adv,
                                      height=220, compact=True, region=cfg.region)
            st.plotly_chart(fig, width="stretch", config={"displayModeBar": False},
                            key=keys.widget("cmp", "side", name))
            if res.found:
                pairs.append(panels.Pair(label, f"{mcfg.fingerprint()}:{device}:attack",
                                         orig.map, res.map_adv))
            else:  # x′ = x would score 1.000 everywhere: its cells say so instead
                missing.append(panels.Missing(label, "Try more steps P, a smaller step size α, "
                                                     "more restarts R or another seed."))
            histories[label] = res.history
            outcomes[label] = res
    if cfg.region is not None:
        st.caption(explain.region_caption(cfg.region))
    _sync_link(cfg, partner, ran=len(pairs) + len(missing) == 2)
    if len(pairs) + len(missing) < 2:
        if not clicked:
            st.info("Press **Run the attack on both models** to compare their scores.",
                    icon=":material/play_circle:")
        return
    if not pairs:
        st.warning("No label-preserving x′ was found on either model: no scores to compare. "
                   "Try more steps, a smaller step size α, more restarts or another seed.",
                   icon=":material/warning:")
        return
    h, w = info.size
    _show_verdict(verdict_slot, cfg, pairs, outcomes, attack_name, h * w)
    panels.analysis(panels.PanelInput(
        dataset=cfg.dataset, height=h, width=w, pairs=pairs, histories=histories,
        measure=cfg.attack_params.get("measure", "topk_intersection"), key="cmp",
        missing=tuple(missing)))


def _show_verdict(slot, cfg: Config, pairs: list, outcomes: dict, attack_name: str,
                  n_pixels: int) -> None:
    k = min(data.DATASETS[cfg.dataset].defaults.eval_k, n_pixels)
    missing = [label for label, res in outcomes.items() if not res.found]
    with slot.container():
        if missing:
            st.warning(f"No verdict: the {attack_name} found no label-preserving perturbation "
                       f"for the {' and '.join(missing)} model, so its attacked map is its "
                       "original map.", icon=":material/balance:")
        else:
            scores = {p.label: float(metrics.set_metrics(torch.from_numpy(p.a),
                                                         torch.from_numpy(p.b), k, 0)
                                     ["topk_intersection"]) for p in pairs}
            st.info(verdict(scores, k=k, n_pixels=n_pixels, attack=attack_name),
                    icon=":material/balance:")
            st.caption(verdict_facts(scores, k=k, n_pixels=n_pixels))
        st.caption(RULE)


def _sync_link(cfg: Config, partner: str, *, ran: bool) -> None:
    """Write the page's settings into its address (only when they changed)."""
    controls.write_query(compare_query(cfg, partner, ran=ran))
