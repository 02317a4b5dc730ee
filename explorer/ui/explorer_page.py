"""The explorer page: one model, one image, one attack, every score, live in k and w."""

from __future__ import annotations

import streamlit as st

from explorer import attacks

from . import controls, explain, flow, keys, link, map_view, panels, stages
from .common import APP_TITLE, guarded, presenter_style
from .export import ExportContext
from .stages import AttackOutcome, OriginalMap

__all__ = ["render"]


def _banner(ds: str, orig: OriginalMap, res: AttackOutcome | None, inp: flow.Input,
            epsilon: float | None = None) -> None:
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
        st.warning(text + "**no label-preserving perturbation found**: no iterate both kept the "
                   "prediction and changed the selection measure, so the attack has no x′ and "
                   "no attack scores are shown (scoring the unperturbed image would read 1.000). "
                   f"{_no_x_advice(epsilon)} " + res.message, icon=":material/warning:")
    elif res.label_kept:
        st.success(text + "**label held**. " + f"({res.steps_run} steps, "
                   f"{res.seconds:.1f} s)", icon=":material/check_circle:")
    else:  # the library never returns a label-changing iterate; say so if it ever does
        st.error(text + "**label changed**.", icon=":material/error:")


def _no_x_advice(epsilon: float | None = None, short: bool = False) -> str:
    """What the sidebar offers when an attack found no label-preserving x′ (``short``: for the
    table cell)."""
    if epsilon is not None and epsilon <= 0:
        return "ε is 0: raise ε." if short else "ε is 0, so no perturbation is allowed: raise ε."
    if short:
        return "Try more steps P, a smaller step size α, more restarts R or another seed."
    return ("Try more steps P, a smaller step size α, more restarts R (each starts at a random "
            "point of the ε-ball) or another seed, in the sidebar's attack settings.")


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

    statement = st.empty()  # the one-line statement, written by the k / w panel
    present = map_view.presenter_on()
    if present:
        presenter_style()
    run_col, note_col = st.columns([1, 4], vertical_alignment="center")
    with run_col:
        clicked = st.button("Run attack", type="primary", key="exp.run", width="stretch",
                            icon=":material/bolt:")
    with note_col:
        if not present:  # fewer numbers on a projector
            st.caption(f"{attacks.ATTACKS[cfg.attack].name}: "
                       + controls.attack_summary(info, attacks.ATTACKS[cfg.attack],
                                                 cfg.attack_params)
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

    eps = float(cfg.attack_params.get("epsilon", 1.0) or 0.0)
    _banner(cfg.dataset, orig, res, inp, eps)
    if partial is not None:
        st.info(f"You stopped this attack after {partial.steps_run} of {steps} steps; shown is "
                "the best label-preserving iterate found by then. Press **Run attack** to run it "
                "in full.", icon=":material/pause_circle:")
    if not present:
        explain.attack_help()
    if orig.degenerate:
        st.warning("The original map is all zeros: the gradient of the predicted class vanished "
                   "at this input, so the map ranks nothing. Rank correlations and the centre "
                   "shift are undefined; top-k sets fall back to the pixel order.",
                   icon=":material/warning:")
    if res is not None and res.degenerate:
        st.warning("The attacked map is all zeros (the gradient vanished at x′).",
                   icon=":material/warning:")

    choice = map_view.display_controls(present)
    adv_x = res.x_adv if res is not None else None
    adv_map = res.map_adv if res is not None else None
    adv_rank = res.rank_adv if res is not None else None
    map_view.panels(inp.x[0], adv_x, orig.map, adv_map, orig.rank, adv_rank, choice,
                    region=cfg.region)
    if cfg.region is not None:
        st.caption(explain.region_caption(cfg.region))
    tiles = st.empty()  # presenter mode: the headline scores, written by the k / w panel
    zoom = map_view.zoom_view(inp.x[0], adv_x, orig.map, adv_map, orig.rank, adv_rank,
                              "attacked" if res is not None else None, choice)
    controls.sync_query_params(cfg, ran=res is not None, present=present,
                               smooth=choice.smooth or None, zoom=zoom)

    rand = flow.random_sign(cfg, device, inp)  # after the pictures: first maps show sooner
    pairs = []
    histories = {}
    images_b = {}
    missing = ()
    if res is not None and res.found:
        pairs.append(panels.Pair("attack", f"{cfg.fingerprint()}:{device}:attack",
                                 orig.map, res.map_adv))
        histories["attack"] = res.history
        images_b["attack"] = res.x_adv
    elif res is not None:  # x′ = x would score 1.000 everywhere: its cells say so instead
        missing = (panels.Missing("attack", _no_x_advice(eps, short=True)),)
        histories["attack"] = res.history
    if rand is not None and rand.found:
        earlier = (f"the draw with seed {cfg.seed}" if rand.seed - 1 == cfg.seed else
                   f"the draws with seeds {cfg.seed} to {rand.seed - 1}")
        note = (f"drawn with seed {rand.seed} ({earlier} changed the prediction)."
                if rand.tried > 1 else "")
        pairs.append(panels.Pair("random sign", f"{cfg.fingerprint()}:{device}:random:{rand.seed}",
                                 orig.map, rand.outcome.map_adv, note=note))
        images_b["random sign"] = rand.outcome.x_adv
    elif rand is not None:
        _no_noise_draw(cfg, rand)
    if not pairs:
        st.info("No label-preserving perturbed map to compare with." if res is not None else
                "No perturbed map to compare with yet.")
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
        chance_source=((cfg.dataset, cfg.model, device), cfg.method, cfg.method_items()),
        missing=missing,
        on_scores=map_view.headline_writer(statement, tiles if present else None, cfg,
                                             orig, res),
        compact=present))
    _explain()
