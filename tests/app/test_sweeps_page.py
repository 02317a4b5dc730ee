"""The Sweeps page (batch evaluation results) under Streamlit's AppTest: it opens a results
folder and shows the report's numbers; a bad folder gives a message, not a traceback."""

from __future__ import annotations

import json
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
from explorer.evaluation.roots import ROOTS_ENV  # noqa: E402
from explorer.ui import sweeps  # noqa: E402

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


def open_page(path: str, monkeypatch, root=None) -> AppTest:
    """The page with ``root`` (default: ``path``'s parent) as the only results root, ``path``
    typed into the folder box."""
    monkeypatch.setenv(ROOTS_ENV, str(root or Path(path).parent))
    at = AppTest.from_string(SCRIPT, default_timeout=120)
    at.run()
    at.multiselect(key=sweeps.FOLDERS).set_value([])
    at.text_input(key=sweeps.PATH).set_value(path)
    at.run()
    return at


def test_page_shows_the_report_numbers(toy_folder, monkeypatch):
    at = open_page(str(toy_folder), monkeypatch)
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
    at.selectbox(key=sweeps.view_key(sweeps.OPEN, "w")).set_value(2)
    at.run()
    shown = at.dataframe[0].value
    want2 = summary.summary_table(rows, "toy", w=2)
    want2 = want2[(want2["model"] == "pgd") & (want2["attack"] == "topk")].iloc[0]
    cell = shown[(shown["model"] == "pgd") & (shown["attack"] == "top-k attack")][
        "w-LENS-recall@k"].item()
    assert cell.startswith(f"{want2['lens_recall']:.3f} [")


def test_list_offers_the_folders_of_the_configured_roots(toy_folder, tmp_path, monkeypatch):
    """The folders found under the roots are listed; choosing one from the list shows it.
    Streamlit's secrets (``results_roots``) come before the environment variable."""
    other = tmp_path / "other-root"
    (other / "not-results").mkdir(parents=True)  # no config.json: not listed
    monkeypatch.setenv(ROOTS_ENV, str(other))
    at = AppTest.from_string(SCRIPT, default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    assert at.multiselect(key=sweeps.FOLDERS).options == []
    assert any("No results folder chosen" in i.value for i in at.info)
    at = AppTest.from_string(SCRIPT, default_timeout=120)
    at.secrets["results_roots"] = [str(toy_folder.parent)]
    at.run()
    box = at.multiselect(key=sweeps.FOLDERS)
    assert box.options == [str(toy_folder)]
    assert str(toy_folder.parent) in box.help  # the help names the configured roots
    box.set_value([str(toy_folder)])
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.selectbox(key=sweeps.view_key(sweeps.OPEN, "dataset")).value == "toy"
    assert len(at.dataframe) >= 2


def test_bad_folder_is_a_message(tmp_path, monkeypatch):
    # A missing folder is refused like any folder outside the roots (nothing says it is absent).
    at = open_page(str(tmp_path / "missing"), monkeypatch)
    assert not at.exception
    assert [e.value for e in at.error] == [
        f"Results are read only from the configured folders: {tmp_path}. Choose one of the "
        "folders listed."]
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    at = open_page(str(bad), monkeypatch)
    assert not at.exception
    assert any("config.json, line 1: not valid JSON" in e.value for e in at.error)


@pytest.mark.skipif(not (ROOT / "docs" / "results").is_dir(),
                    reason="the committed reproduction rows are not present")
def test_committed_reproduction_opens_by_default():
    at = AppTest.from_string(SCRIPT, default_timeout=180)
    at.run()
    assert not at.exception, at.exception
    chosen = at.multiselect(key=sweeps.FOLDERS).value
    # The folders docs/reproduction.md was made from, as docs/results/reported.json lists them
    # (older runs kept beside them are offered but not opened).
    listed = json.loads((ROOT / "docs" / "results" / "reported.json").read_text())["folders"]
    assert chosen == [f"docs/results/{name}" for name in listed]
    # MNIST, Simple Gradients, paper setting (ε = 0.3, k = 100, w = 1): the table shows the
    # report's numbers for the committed rows.
    assert at.selectbox(key=sweeps.view_key(sweeps.OPEN, "dataset")).value == "mnist"
    at.selectbox(key=sweeps.view_key(sweeps.OPEN, "method")).set_value("saliency")
    at.run()
    rs = summary.load_many([ROOT / f for f in chosen])
    tab = summary.summary_table(rs.rows[rs.rows["method"] == "saliency"], "mnist")
    want = tab[(tab["model"] == "natural") & (tab["attack"] == "topk")].iloc[0]
    shown = at.dataframe[0].value
    cell = shown[(shown["model"] == "natural") & (shown["attack"] == "top-k attack")][
        "top-k intersection"].item()
    assert cell.startswith(f"{want['topk_intersection']:.3f} [")
    assert len(at.expander) >= 4


def test_every_committed_folder_at_once_shows_the_claims_without_an_error():
    # Older folders (no chance levels) mixed with newer ones: no error, and the basis said.
    at = AppTest.from_string(SCRIPT, default_timeout=240)
    at.run()
    options = at.multiselect(key=sweeps.FOLDERS).options
    at.multiselect(key=sweeps.FOLDERS).set_value(
        [o for o in options if o.startswith("docs/results")])
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    claims = [e.label for e in at.expander if e.label.startswith("Claim ")]
    assert len(claims) == 4
    # The rules name the scores judged, as the library judges these rows (older rows come first
    # and lack chance levels; the newer folders record them for every setting).
    from explorer.evaluation import claims as paper_claims

    chosen = at.multiselect(key=sweeps.FOLDERS).value
    want = paper_claims.claims(summary.load_many([ROOT / f for f in chosen]).rows)
    rules = [m.value for m in at.markdown if "*Rule:*" in m.value]
    assert len(rules) == 4
    assert all(f"*Rule:* On {c.basis}" in r for c, r in zip(want, rules))


def test_live_sweep_runs_with_progress_and_shows_rows():
    from explorer import models

    if not (models.is_available("mnist", "natural") and models.is_available("mnist", "pgd")):
        pytest.skip("the shipped MNIST models are not present")
    at = AppTest.from_string(SCRIPT, default_timeout=240)
    at.run()
    at.segmented_control(key=sweeps.MODE).set_value("Run a small sweep")
    at.run()
    assert not at.exception, at.exception
    # The device badge of the sweep (the sidebar's choice, else auto: the CPU here).
    from explorer import device

    if not device.cuda_available():
        assert any(f"Running on CPU ({device.cpu_cores()} core" in m.value
                   for m in at.markdown), [m.value for m in at.markdown]
    at.number_input(key=sweeps.form_key("images")).set_value(3)
    at.number_input(key=sweeps.form_key("steps")).set_value(3)
    at.text_input(key=sweeps.form_key("eps")).set_value("0.3, 0.1")
    assert at.selectbox(key=sweeps.form_key("source")).value == "samples"  # works without data files
    at.button(key=f"FormSubmitter:{sweeps.FORM}-Run sweep").click()
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    rows = at.session_state[sweeps.LIVE_ROWS]
    # 3 images × 2 models × 2 attacks (random sign, top-k) × 2 ε, every metric present.
    assert len(rows) == 24
    assert set(rows["epsilon"]) == {0.3, 0.1} and set(rows["model"]) == {"natural", "pgd"}
    assert rows[metric_column("lens_recall", 100, 1)].between(0, 1).all()
    assert len(at.dataframe) >= 2
