"""The Sweeps page (batch evaluation results) under Streamlit's AppTest: it opens a results
folder and shows the report's numbers; a bad folder gives a message, not a traceback."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "unit"))

from evaluate_fakes import ToyBackend  # noqa: E402
from explorer.evaluation.folder import load_results  # noqa: E402
from explorer.evaluation.plan import EvalConfig  # noqa: E402
from explorer.evaluation.runner import run  # noqa: E402
from explorer.evaluation.schema import metric_column  # noqa: E402
from explorer.evaluation import summary  # noqa: E402

SCRIPT = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from explorer.ui import sweeps
sweeps.render()
"""


@pytest.fixture(scope="module")
def toy_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweeps") / "toy"
    cfg = EvalConfig(datasets=("toy",), models=("natural", "pgd"), methods=("saliency",),
                        attacks=("random_sign", "topk"), eps=(0.1, 0.2), w=(0, 1, 2),
                        n_images=4, batch_size=2)
    run(cfg, folder, backend=ToyBackend(), device="cpu", progress=False)
    return folder


def open_page(path: str) -> AppTest:
    at = AppTest.from_string(SCRIPT, default_timeout=120)
    at.run()
    at.multiselect(key="sweeps_folders").set_value([])
    at.text_input(key="sweeps_path").set_value(path)
    at.run()
    return at


def test_page_shows_the_report_numbers(toy_folder):
    at = open_page(str(toy_folder))
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    # Default selection: the largest ε (the toy dataset has no paper ε), k = 5, w = 1.
    tables = [df.value for df in at.dataframe]
    assert len(tables) >= 2
    set_table = tables[0]
    rows = load_results(toy_folder)
    tab = summary.summary_table(rows, "toy")
    want = tab[(tab["model"] == "pgd") & (tab["attack"] == "topk")].iloc[0]
    shown = set_table[(set_table["model"] == "pgd") & (set_table["attack"] == "top-k attack")]
    cell = shown["top-k intersection"].item()
    assert cell.startswith(f"{want['topk_intersection']:.3f} [")
    # Every claim is listed with its verdict.
    labels = [e.label for e in at.expander]
    for n in (1, 2, 3, 4):
        assert any(label.startswith(f"Claim {n}:") for label in labels), labels
    # Changing w changes the LENS column to the w = 2 values.
    at.selectbox(key="sweeps_open_w").set_value(2)
    at.run()
    shown = at.dataframe[0].value
    want2 = summary.summary_table(rows, "toy", w=2)
    want2 = want2[(want2["model"] == "pgd") & (want2["attack"] == "topk")].iloc[0]
    cell = shown[(shown["model"] == "pgd") & (shown["attack"] == "top-k attack")][
        "w-LENS-recall@k"].item()
    assert cell.startswith(f"{want2['lens_recall']:.3f} [")


def test_bad_folder_is_a_message(tmp_path):
    at = open_page(str(tmp_path / "missing"))
    assert not at.exception
    assert any("is not a folder" in e.value for e in at.error)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    at = open_page(str(bad))
    assert not at.exception
    assert any("config.json, line 1: not valid JSON" in e.value for e in at.error)


@pytest.mark.skipif(not (ROOT / "docs" / "results").is_dir(),
                    reason="the committed reproduction rows are not present")
def test_committed_reproduction_opens_by_default():
    at = AppTest.from_string(SCRIPT, default_timeout=180)
    at.run()
    assert not at.exception, at.exception
    chosen = at.multiselect(key="sweeps_folders").value
    assert chosen and all(f.startswith("docs/results") for f in chosen)
    # MNIST, Simple Gradients, paper setting (ε = 0.3, k = 100, w = 1): the table shows the
    # report's numbers for the committed rows.
    assert at.selectbox(key="sweeps_open_dataset").value == "mnist"
    at.selectbox(key="sweeps_open_method").set_value("saliency")
    at.run()
    rs = summary.load_many([ROOT / f for f in chosen])
    tab = summary.summary_table(rs.rows[rs.rows["method"] == "saliency"], "mnist")
    want = tab[(tab["model"] == "natural") & (tab["attack"] == "topk")].iloc[0]
    shown = at.dataframe[0].value
    cell = shown[(shown["model"] == "natural") & (shown["attack"] == "top-k attack")][
        "top-k intersection"].item()
    assert cell.startswith(f"{want['topk_intersection']:.3f} [")
    assert len(at.expander) >= 4


def test_live_sweep_runs_with_progress_and_shows_rows():
    from explorer import models

    if not (models.is_available("mnist", "natural") and models.is_available("mnist", "pgd")):
        pytest.skip("the shipped MNIST models are not present")
    at = AppTest.from_string(SCRIPT, default_timeout=240)
    at.run()
    at.segmented_control(key="sweeps_mode").set_value("Run a small sweep")
    at.run()
    assert not at.exception, at.exception
    at.number_input(key="sweeps_form_images").set_value(3)
    at.number_input(key="sweeps_form_steps").set_value(3)
    at.text_input(key="sweeps_form_eps").set_value("0.3, 0.1")
    assert at.selectbox(key="sweeps_form_source").value == "samples"  # works without data files
    at.button(key="FormSubmitter:sweeps_form-Run sweep").click()
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    rows = at.session_state["sweeps_live_rows"]
    # 3 images × 2 models × 2 attacks (random sign, top-k) × 2 ε, every metric present.
    assert len(rows) == 24
    assert set(rows["epsilon"]) == {0.3, 0.1} and set(rows["model"]) == {"natural", "pgd"}
    assert rows[metric_column("lens_recall", 100, 1)].between(0, 1).all()
    assert len(at.dataframe) >= 2
