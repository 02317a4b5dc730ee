"""AppTests of the smaller explorer fixes: the Compare page (sidebar model respected, settings in
the address, a verdict by a stated rule), unusable datasets and models kept out of the pickers,
"Test-set index" only with a test set, the log-scale k control, readable measure names and the
targeted attack's region drawn."""

from __future__ import annotations

import json

from streamlit.testing.v1 import AppTest

from explorer import attacks, attributions, data, metrics, models
from explorer.ui import availability, compare_page, link

from app_helpers import metric_table, new_app, no_errors

STEPS = 3
BALANCE = ":material/balance:"


def _compare():
    from explorer.ui import compare_page

    compare_page.render()


def _compare_app(**query) -> AppTest:
    at = AppTest.from_function(_compare, default_timeout=180)
    for key, value in query.items():
        at.query_params[key] = str(value)
    return at


def _attacked_intersection(model: str, k: int) -> float:
    """The top-k intersection of a model's original and attacked maps, by the library."""
    d = data.DATASETS["mnist"].defaults
    net = models.load("mnist", model)
    x = data.load_samples("mnist").x[:1]
    a = attributions.attribution_map(net, x)[0]
    res = attacks.attack(net, x, method="saliency", attack="topk", epsilon=d.epsilon,
                         step_size=d.step_size, steps=STEPS, attack_k=d.attack_k, w=d.w, seed=0)
    assert bool(res.found[0])
    return float(metrics.set_metrics(a, res.map_adv[0], k, 0)["topk_intersection"])


def test_compare_page_link_holds_its_settings_and_the_sidebar_model_comes_first():
    at = _compare_app(model="pgd", vs="natural", **{"a.steps": STEPS})
    at.run()
    no_errors(at)
    assert at.selectbox(key="cfg.model.mnist").value == "pgd"
    assert at.selectbox(key="cfg.cmp_vs.mnist").value == "natural"
    at.button(key="cmp.run").click().run()
    no_errors(at)
    assert list(metric_table(at)) == ["PGD", "natural"]  # the sidebar's model first
    # The address holds the page's settings: they read back to the same view.
    query = {k: at.query_params[k][0] if isinstance(at.query_params[k], list)
             else at.query_params[k] for k in at.query_params}
    assert query["vs"] == "natural" and query["model"] == "pgd" and query["a.steps"] == "3"
    state, problems = link.from_query(query)
    assert problems == [] and state.model == "pgd" and state.attack_params["steps"] == STEPS
    # The verdict equals the stated rule applied to the library's own scores at the paper's k.
    k = data.DATASETS["mnist"].defaults.eval_k
    scores = {"PGD": _attacked_intersection("pgd", k),
              "natural": _attacked_intersection("natural", k)}
    want = compare_page.verdict(scores, k=k, n_pixels=784, attack="top-k attack")
    verdicts = [i.value for i in at.info if i.proto.icon == BALANCE]
    assert verdicts == [want]
    assert any("Verdict rule" in c.value and "(I − k/n) / (1 − k/n)" in c.value
               for c in at.caption)


def test_compare_page_follows_the_sidebar_model():
    at = _compare_app()
    at.run()
    no_errors(at)
    assert at.selectbox(key="cfg.cmp_vs.mnist").value == "pgd"
    at.selectbox(key="cfg.model.mnist").set_value("pgd").run()
    no_errors(at)
    # The partner cannot be the sidebar's model: it moves to the other one.
    assert at.selectbox(key="cfg.cmp_vs.mnist").options == ["MNIST CNN, natural training"]
    titles = [m.value for m in at.markdown if m.value.startswith("**MNIST CNN")]
    assert titles[0].startswith("**MNIST CNN, PGD") and "natural" in titles[1]


def test_compare_page_bad_second_model_joins_the_one_link_warning():
    at = _compare_app(vs="resnet18", k=99999)
    at.run()
    no_errors(at)
    boxes = [w.value for w in at.warning if w.proto.icon == ":material/link_off:"]
    assert len(boxes) == 1 and "2 values" in boxes[0]
    assert "`vs` = `resnet18` is not a model of MNIST" in boxes[0]
    assert at.selectbox(key="cfg.cmp_vs.mnist").value == "pgd"


def test_unusable_datasets_are_not_offered_and_each_gets_one_line():
    at = new_app(ds="gtsrb")
    at.run()
    no_errors(at)
    assert at.selectbox(key="cfg.dataset").options == ["MNIST", "Fashion-MNIST", "ImageNet"]
    assert at.selectbox(key="cfg.dataset").value == "mnist"
    (exp,) = [e for e in at.sidebar.expander if e.label.startswith("Not available here")]
    assert exp.label == "Not available here: GTSRB, Flowers-102"
    lines = exp.caption[0].value.split("  \n")
    assert lines == ["GTSRB — not installed: `python -m explorer data import gtsrb DIR`",
                     "Flowers-102 — not installed: "
                     "`python -m explorer data import flowers102 DIR`"]
    (box,) = [w.value for w in at.warning if w.proto.icon == ":material/link_off:"]
    assert "`ds` = `gtsrb` cannot be used here: not installed: `python -m explorer data import " \
           "gtsrb DIR`" in box and "using MNIST" in box
    metric_table(at)  # the page works on MNIST


def test_unusable_imagenet_models_are_named_with_one_line_and_refused_from_a_link(
        monkeypatch, tmp_path):
    monkeypatch.setenv("EXPLORER_OFFLINE", "1")
    monkeypatch.setattr(models, "hub_checkpoint_path", lambda name: tmp_path / f"{name}.pth")
    assert availability.usable_models("imagenet") == ["efficientnet_lite0"]
    hint = availability.model_hint("imagenet", "resnet18")
    assert hint == (f"ResNet-18 (ImageNet) — weights not downloaded (offline): copy "
                    f"`resnet18.pth` into `{tmp_path}`")
    assert "\n" not in hint and len(hint) < 200
    query = {"ds": "imagenet", "model": "resnet50", "k": "1234"}
    state, problems = link.from_query(query)
    state, problems = availability.restrict_link(query, state, problems)
    assert state.model is None and state.k == 1234
    (p,) = problems
    assert p.key == "model" and "weights not downloaded" in p.why
    assert p.allowed == "allowed here: efficientnet_lite0"


def test_test_set_index_is_offered_only_with_a_test_set(monkeypatch):
    def absent(dataset, root=None, download=False):
        raise data.DatasetUnavailable(f"{dataset} is not downloaded (a long message)")

    monkeypatch.setattr(data, "load_test_set", absent)
    monkeypatch.setattr(data, "test_set_count", lambda dataset, root=None: None)
    at = new_app(src="index", img="5")
    at.run()
    no_errors(at)
    assert at.radio(key="cfg.source").options == ["Gallery", "Upload"]
    assert at.radio(key="cfg.source").value == "sample"
    assert any(c.value == "Test-set index: the MNIST test set is not on this machine "
                          "(`python -m explorer data import mnist DIR`)."
               for c in at.sidebar.caption)
    metric_table(at)


def test_test_set_index_is_offered_when_the_test_set_is_here(monkeypatch):
    # The test set's size is all the sidebar needs (CI has no MNIST files): say 10,000 images.
    monkeypatch.setattr(data, "test_set_count", lambda dataset, root=None: 10_000)
    at = new_app()
    at.run()
    no_errors(at)
    assert at.radio(key="cfg.source").options == ["Gallery", "Test-set index", "Upload"]


def _k_page():
    import streamlit as st

    from explorer.ui import kcontrol

    k = kcontrol.k_slider("imagenet", 224 * 224, "cfg.k.imagenet")
    st.markdown(f"table uses k = {k}")


def test_log_scale_k_on_large_images_keeps_a_link_k_exactly_and_reports_what_it_shows():
    at = AppTest.from_function(_k_page, default_timeout=60)
    at.session_state["cfg.k.imagenet"] = 1234  # as a link would set it
    at.run()
    no_errors(at)
    ctl = at.select_slider(key="cfg.k.imagenet")
    assert ctl.value == 1234
    assert ctl.options[:4] == ["1", "2", "5", "10"] and ctl.options[-1] == "50,176"
    assert "1,234" in ctl.options and "1,000" in ctl.options  # the link's and the paper's k
    assert at.markdown[-1].value == "table uses k = 1234"
    assert "k = 1,234 of 50,176 pixels" in at.caption[0].value
    assert "not on the 1-2-5 grid" in at.caption[0].value
    ctl.set_value(5000).run()
    assert at.select_slider(key="cfg.k.imagenet").value == 5000
    assert at.markdown[-1].value == "table uses k = 5000"  # the thumb's value is the table's
    assert len(at.caption) == 0  # on the grid: the thumb's label says it all


def test_selection_measure_shows_readable_names():
    at = new_app()
    at.run()
    no_errors(at)
    box = at.selectbox(key="cfg.ap.mnist.topk.measure")
    assert box.value == "topk_intersection"
    assert "top-k intersection" in box.options and "Kendall τ" in box.options
    assert not any("_" in o for o in box.options)
    captions = " ".join(c.value for c in at.caption)
    assert "selection measure = top-k intersection" in captions
    assert "topk_intersection" not in captions


def test_targeted_attack_region_is_outlined_on_the_image_and_the_maps():
    at = new_app(attack="targeted", region="3,9,10,20")
    at.run()
    no_errors(at)
    panels = [json.loads(c.proto.spec) for c in at.get("plotly_chart")
              if c.proto.id and "exp.panel." in c.proto.id]
    assert len(panels) == 2  # not attacked yet: the image and its map, one figure each
    for spec in panels:
        shapes = spec["layout"]["shapes"]
        assert shapes and {s["xref"] for s in shapes} == {"x"}
        for s in shapes:
            assert (s["x0"], s["x1"], s["y0"], s["y1"]) == (9.5, 20.5, 2.5, 9.5)
    assert any(c.value.startswith("Cyan outline: the targeted attack's region, rows 3–9 and "
                                  "columns 10–20 (77 pixels)") for c in at.caption)
    at.selectbox(key="cfg.attack").set_value("topk").run()
    assert not any(json.loads(c.proto.spec)["layout"].get("shapes")
                   for c in at.get("plotly_chart") if c.proto.id and "exp.panel." in c.proto.id)
    assert not any(c.value.startswith("Cyan outline") for c in at.caption)
