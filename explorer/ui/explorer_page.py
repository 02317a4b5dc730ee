"""The explorer page: one model, one image, one attack, every score, live in k and w."""

from __future__ import annotations

import streamlit as st

from explorer import attacks, viz

from . import controls, explain, flow, keys, link, panels, stages
from .common import APP_TITLE, guarded
from .export import ExportContext
from .stages import AttackOutcome, OriginalMap

__all__ = ["render"]


def _banner(ds: str, orig: OriginalMap, res: AttackOutcome | None, inp: flow.Input) -> None:
    truth = f" · true label {flow.class_name(ds, inp.label)}" if inp.label >= 0 else ""
    if res is None:
        st.info(f"Prediction: **{flow.class_name(ds, orig.label)}** "
                f"({100 * orig.conf:.1f}%){truth}. Press **Run attack** to perturb the image; "
                "until then the scores compare the map with the map under random sign noise.",
                icon=":material/play_circle:")
        return
    text = (f"Original: **{flow.class_name(ds, res.label_orig)}** "
            f"({100 * res.conf_orig:.1f}%) → attacked: **{flow.class_name(ds, res.label_adv)}**"
            f" ({100 * res.conf_adv:.1f}%) · ‖x′ − x‖∞ = {res.linf:.4g}{truth} · ")
    if not res.found:
        st.warning(text + "**no label-preserving perturbation found**: the attacked image is the "
                   "original. " + res.message, icon=":material/warning:")
    elif res.label_kept:
        st.success(text + "**label held**. " + f"({res.steps_run} steps, "
                   f"{res.seconds:.1f} s)", icon=":material/check_circle:")
    else:  # the library never returns a label-changing iterate; say so if it ever does
        st.error(text + "**label changed**.", icon=":material/error:")


def _next_seed(seed: int) -> None:
    st.session_state[keys.seed()] = seed


def _no_noise_draw(cfg, rand: flow.NoiseOutcome) -> None:
    """The random-sign column when no draw kept the label: said in place of its scores."""
    st.warning(f"**Random sign noise: no label-preserving draw.** The ±ε draws with seeds "
               f"{cfg.seed} to {cfg.seed + rand.tried - 1} all changed the model's prediction, "
               "so none is a perturbation the attack could have chosen, and no random-sign "
               "scores are shown (scoring the unperturbed image instead would read 1.000). Try "
               "another seed or a smaller ε.", icon=":material/casino:")
    st.button("Try the next seeds", key="exp.noise_next", icon=":material/refresh:",
              on_click=_next_seed, args=((cfg.seed + rand.tried) % (2 ** 31),))


def _explain() -> None:
    explain.citation()


@guarded
def render() -> None:
    sb, cfg, device, info = controls.page_start(APP_TITLE)

    net = flow.load_model(cfg.dataset, cfg.model, device)
    inp = flow.choose_input(sb)
    if net is None or inp is None:
        _explain()
        return
    orig = flow.original_map(cfg, device, inp)
    if orig is None:
        _explain()
        return

    run_col, note_col = st.columns([1, 4], vertical_alignment="center")
    with run_col:
        clicked = st.button("Run attack", type="primary", key="exp.run", width="stretch",
                            icon=":material/bolt:")
    with note_col:
        st.caption(f"{attacks.ATTACKS[cfg.attack].name}: "
                   + controls.attack_summary(info, attacks.ATTACKS[cfg.attack], cfg.attack_params)
                   + f" · seed {cfg.seed} · running on {device}")
    autorun = st.session_state.pop(keys.autorun(), False)
    res = None
    partial = None
    decision = flow.attack_decision(cfg, device)
    cached = flow.attack_was_run(cfg, device, inp)
    if decision.action == "refuse" and not cached:
        st.error(decision.message, icon=":material/block:")
    elif autorun and not clicked and not cached and decision.action == "confirm":
        st.info(f"This link asks to run the attack on open. {decision.message} Press **Run "
                "attack** to start it.", icon=":material/schedule:")
    elif clicked or autorun or cached:
        res = flow.run_attack(cfg, device, inp, decision=decision)
    if res is None:
        res = partial = flow.partial_attack(cfg, device, inp)
    steps = cfg.attack_params.get("steps", 0) or 0
    h, w = info.size
    if res is None and decision.action != "refuse":
        st.caption(f":material/schedule: Estimated: {decision.estimate.summary}. While it runs, "
                   "any change of a setting stops the attack and keeps the best iterate so far.")
    controls.sync_query_params(cfg, ran=res is not None)

    _banner(cfg.dataset, orig, res, inp)
    if partial is not None:
        st.info(f"You stopped this attack after {partial.steps_run} of {steps} steps; shown is "
                "the best label-preserving iterate found by then. Press **Run attack** to run it "
                "in full.", icon=":material/pause_circle:")
    explain.attack_help()
    if orig.degenerate:
        st.warning("The original map is all zeros: the gradient of the predicted class vanished "
                   "at this input, so the map ranks nothing. Rank correlations and the centre "
                   "shift are undefined; top-k sets fall back to the pixel order.",
                   icon=":material/warning:")
    if res is not None and res.degenerate:
        st.warning("The attacked map is all zeros (the gradient vanished at x′).",
                   icon=":material/warning:")

    t1, t2 = st.columns(2)
    overlay = t1.toggle("Overlay maps on the images", key="exp.overlay", value=False)
    full = t2.toggle("Full colour range (no clipping)", key="exp.fullrange", value=False,
                     help="By default the colour scale stops at the 99th percentile of both "
                          "maps' values, so that a few very bright pixels do not turn the rest "
                          "black. Display only: the scores never see it.")
    adv_x = res.x_adv if res is not None else None
    adv_map = res.map_adv if res is not None else None
    fig, factor = viz.side_by_side(inp.x[0], adv_x, orig.map, adv_map, orig.rank,
                                   res.rank_adv if res is not None else None,
                                   overlay=0.45 if overlay else 0.0,
                                   height=230 if res is not None else 260,
                                   clip_percentile=None if full else viz.DEFAULT_CLIP_PERCENTILE,
                                   region=cfg.region)
    st.plotly_chart(fig, width="stretch", config={"displayModeBar": False}, key="exp.side")
    if cfg.region is not None:
        st.caption(explain.region_caption(cfg.region))
    scale_note = (f"Perturbation shown as 0.5 + {factor:.3g}·(x′ − x) (mid-grey = unchanged). "
                  if factor else "")
    scale = ("0 to the larger maximum" if full else "clipped at a high percentile of their joint "
             "values so that the structure stays visible (the colour bar says where)")
    st.caption(scale_note + f"Both maps share one colour scale, {scale}; hover a map pixel for "
               "its exact value and rank.")

    rand = flow.random_sign(cfg, device, inp)  # after the pictures: first maps show sooner
    pairs = []
    histories = {}
    images_b = {}
    if res is not None:
        pairs.append(panels.Pair("attack", f"{cfg.fingerprint()}:{device}:attack",
                                 orig.map, res.map_adv))
        histories["attack"] = res.history
        images_b["attack"] = res.x_adv
    if rand is not None and rand.found:
        note = (f"drawn with seed {rand.seed} (the draws with seeds {cfg.seed} to "
                f"{rand.seed - 1} changed the prediction)." if rand.tried > 1 else "")
        pairs.append(panels.Pair("random sign", f"{cfg.fingerprint()}:{device}:random:{rand.seed}",
                                 orig.map, rand.outcome.map_adv, note=note))
        images_b["random sign"] = rand.outcome.x_adv
    elif rand is not None:
        _no_noise_draw(cfg, rand)
    if not pairs:
        st.info("No perturbed map to compare with yet.")
        _explain()
        return
    model_facts = stages.model_info(cfg.dataset, cfg.model)
    predictions = {"original": {"label": orig.label, "confidence": orig.conf}}
    if res is not None:
        predictions["attacked"] = {"label": res.label_adv, "confidence": res.conf_adv,
                                   "label_kept": res.label_kept, "linf": res.linf,
                                   "found": res.found}
    ctx = ExportContext(config=cfg.to_dict(),
                        query=link.to_query(link.link_state(cfg, ran=res is not None)),
                        model=model_facts, input_name=inp.name, image=inp.x[0],
                        images_b=images_b, predictions=predictions,
                        attack_summary=res.message if res is not None else "")
    panels.analysis(panels.PanelInput(
        dataset=cfg.dataset, height=h, width=w, pairs=pairs, histories=histories,
        measure=cfg.attack_params.get("measure", "topk_intersection"), key="exp", export=ctx,
        chance_source=((cfg.dataset, cfg.model, device), cfg.method, cfg.method_items())))
    _explain()
