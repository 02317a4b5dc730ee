"""Compare models: the naturally trained and the PGD-trained model on the same image and attack."""

from __future__ import annotations

import dataclasses

import streamlit as st

from explorer import models, viz

from . import controls, flow, keys, panels
from .common import APP_TITLE, guarded

__all__ = ["render", "short_label"]


def _pick_models(dataset: str) -> list:
    """Up to two models of the dataset: natural first, then PGD, else the first two."""
    infos = models.models_for(dataset)
    by_name = {m.name: m for m in infos}
    chosen = [by_name[n] for n in ("natural", "pgd") if n in by_name]
    ready = [m for m in infos if controls.model_available(dataset, m.name)]
    for m in ready + infos:
        if len(chosen) >= 2:
            break
        if m not in chosen:
            chosen.append(m)
    return chosen[:2]


def short_label(name: str) -> str:
    """Column title for a model: 'natural', 'PGD', or the registry name."""
    return {"pgd": "PGD", "natural": "natural"}.get(name, name)


@guarded
def render() -> None:
    sb, cfg, device, info = controls.page_start(f"{APP_TITLE}: compare models")
    st.caption("The same image, attribution method and attack on two models of the dataset "
               "(the model chosen in the sidebar does not matter here). Kamath et al. report that "
               "PGD-trained models have more robust attributions on small datasets.")
    chosen = _pick_models(cfg.dataset)
    if len(chosen) < 2:
        st.info(f"{info.name} has {len(chosen)} registered model(s); comparing needs two.",
                icon=":material/info:")
        return
    inp = flow.choose_input(sb)
    if inp is None:
        return
    clicked = st.button("Run the attack on both models", type="primary", key="cmp.run",
                        icon=":material/bolt:")
    cols = st.columns(2, gap="medium")
    pairs, histories, missing = [], {}, []
    for col, minfo in zip(cols, chosen):
        with col:
            label = short_label(minfo.name)
            st.markdown(f"**{minfo.label or minfo.name}**")
            try:
                st.caption(controls.card_line(models.card(cfg.dataset, minfo.name)))
            except Exception as exc:  # noqa: BLE001
                st.caption(f"model card unreadable: {exc}")
            net = flow.load_model(cfg.dataset, minfo.name, device)
            if net is None:
                continue
            mcfg = dataclasses.replace(cfg, model=minfo.name)
            orig = flow.original_map(mcfg, device, inp)
            if orig is None:
                continue
            res = None
            if clicked or flow.attack_was_run(mcfg, device, inp):
                res = flow.run_attack(mcfg, device, inp, label=f"{label}: ")
            if res is None:
                st.caption(f"Prediction {flow.class_name(cfg.dataset, orig.label)} "
                           f"({100 * orig.conf:.1f}%). Not attacked yet.")
                fig, _ = viz.side_by_side(inp.x[0], None, orig.map, None, orig.rank, None,
                                          height=220)
                st.plotly_chart(fig, width="stretch", config={"displayModeBar": False},
                                key=keys.widget("cmp", "side", minfo.name))
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
                                      height=220, compact=True)
            st.plotly_chart(fig, width="stretch", config={"displayModeBar": False},
                            key=keys.widget("cmp", "side", minfo.name))
            if res.found:
                pairs.append(panels.Pair(label, f"{mcfg.fingerprint()}:{device}:attack",
                                         orig.map, res.map_adv))
            else:  # x′ = x would score 1.000 everywhere: its cells say so instead
                missing.append(panels.Missing(label, "Try more steps P, a smaller step size α, "
                                                     "more restarts R or another seed."))
            histories[label] = res.history
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
    panels.analysis(panels.PanelInput(
        dataset=cfg.dataset, height=h, width=w, pairs=pairs, histories=histories,
        measure=cfg.attack_params.get("measure", "topk_intersection"), key="cmp",
        sync_url=False, missing=tuple(missing)))
