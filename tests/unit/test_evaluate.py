"""Batch evaluation: rows against explorer.metrics.compare, resume, 2-process gloo run,
bad inputs. Small fakes (8×8 images, tiny ReLU CNNs, 3 attack steps) keep it fast on a CPU."""

from __future__ import annotations

import json
import math
import os
import socket
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from explorer import metrics
from explorer.attacks import attack
from explorer.attributions import attribution_map
from explorer.evaluation import backend as backend_module
from explorer.evaluation.backend import RegistryBackend
from explorer.evaluation.folder import ConfigMismatch, ResultsError, load_results, long_format
from explorer.evaluation.plan import (EvalConfig, Plan, parse_method_params, parse_number,
                                      resolve_config)
from explorer.evaluation.runner import run
from explorer.evaluation.schema import (BASE_COLUMNS, BOOKKEEPING_COLUMNS, KEY_COLUMNS,
                                        TIMING_COLUMNS, extra_column, extra_columns,
                                        metric_column, metric_columns, parse_metric_column)
from explorer.evaluation.units import plan_units, unit_seed

sys.path.insert(0, str(Path(__file__).parent))
from evaluate_fakes import ToyBackend, ToyNet, toy_images  # noqa: E402

BACKEND = ToyBackend()
RESULTS = Path(__file__).resolve().parents[2] / "docs" / "results"
TIMING = list(TIMING_COLUMNS)


def small_config(**kw) -> EvalConfig:
    base = dict(datasets=("toy",), models=("natural",), methods=("saliency",),
                attacks=("random_sign", "topk"), eps=("paper",), k=(5, 10), w=(0, 1, 2),
                n_images=5, batch_size=2, all_images=True)  # toy labels are random
    base.update(kw)
    return EvalConfig(**base)


@pytest.fixture
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def without_timings(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=TIMING).sort_values(list(KEY_COLUMNS)).reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------

def test_the_chosen_x_prime_is_picked_at_the_first_reported_k_by_default():
    plan = resolve_config(small_config(k=(5, 10)), BACKEND)
    assert plan.per_dataset["toy"].select_k == 5 and plan.per_dataset["toy"].attack_k == 6
    plan = resolve_config(small_config(k=(5, 10), select_k=10), BACKEND)
    assert plan.per_dataset["toy"].select_k == 10


def test_rows_complete_and_equal_to_compare(tmp_path):
    cfg = small_config()
    df = run(cfg, tmp_path / "r", backend=BACKEND, device="cpu", progress=False)
    # One row per (image, attack): 5 images × 2 attacks, no duplicates, canonical order.
    assert len(df) == 10
    assert not df.duplicated(list(KEY_COLUMNS)).any()
    assert list(df["attack"]) == ["random_sign"] * 5 + ["topk"] * 5
    assert list(df["image"]) == [0, 1, 2, 3, 4] * 2
    expected_cols = (list(BASE_COLUMNS) + list(BOOKKEEPING_COLUMNS)
                     + metric_columns([5, 10], [0, 1, 2]) + extra_columns([5, 10], [0, 1, 2])
                     + list(TIMING_COLUMNS))
    assert list(df.columns) == expected_cols
    assert df["epsilon"].eq(0.2).all()  # the toy dataset's "paper" ε

    x_all, y_all = toy_images()
    model = ToyNet(1).eval()
    for att in ("random_sign", "topk"):
        for b, (start, stop) in enumerate([(0, 2), (2, 4), (4, 5)]):
            seed = unit_seed(0, "toy", "test", start)
            res = attack(model, x_all[start:stop], method="saliency", attack=att, epsilon=0.2,
                         step_size=0.05, steps=3, attack_k=6, w=1, seed=seed,
                         select_k=5)  # the first reported k picks x'
            rows = df[(df["attack"] == att) & (df["batch"] == b)].reset_index(drop=True)
            assert list(rows["image"]) == list(range(start, stop))
            assert (rows["seed"] == seed).all()
            assert rows["label"].tolist() == y_all[start:stop].tolist()
            assert rows["pred_orig"].tolist() == res.label_orig.tolist()
            assert rows["pred_adv"].tolist() == res.label_adv.tolist()
            assert rows["label_kept"].tolist() == res.label_kept.tolist()
            assert rows["found"].tolist() == res.found.tolist()
            assert rows["correct"].tolist() == (res.label_orig == y_all[start:stop]).tolist()
            np.testing.assert_allclose(rows["linf"], res.linf.double().numpy(), rtol=0, atol=0)
            for k in (5, 10):
                for w in (0, 1, 2):
                    want = metrics.compare(res.map_orig, res.map_adv, k, w)
                    for key in metrics.METRIC_KEYS:
                        got = rows[metric_column(key, k, w)].to_numpy()
                        np.testing.assert_allclose(got, want[key].numpy(), rtol=0, atol=1e-12,
                                                   equal_nan=True, err_msg=f"{att} {key} {k} {w}")
    # Physical facts: the budget holds, the label is kept, random noise moves every pixel by ε.
    assert (df["linf"] <= 0.2 + 1e-6).all()
    assert df["label_kept"].all()
    assert (df["pred_adv"] == df["pred_orig"]).all()
    rnd = df[(df["attack"] == "random_sign") & df["found"]]
    assert len(rnd) > 0 and np.allclose(rnd["linf"], 0.2, atol=1e-6)
    assert (df["attack_s"] > 0).all() and (df["metrics_s"] > 0).all()
    # The merged file holds the same rows.
    merged = pd.read_csv(tmp_path / "r" / "results.csv")
    assert len(merged) == 10 and list(merged.columns) == expected_cols


def test_ig_attack_steps_fewer_than_reported_are_remeasured(tmp_path):
    cfg = small_config(methods=("integrated_gradients",), attacks=("topk",), n_images=2,
                       k=(5,), w=(1,), method_params={"integrated_gradients": {"steps": 12}},
                       attack_method_params={"integrated_gradients": {"steps": 3}})
    df = run(cfg, None, backend=BACKEND, device="cpu", progress=False)
    x, _ = toy_images()
    x = x[:2]
    model = ToyNet(1).eval()
    res = attack(model, x, method="integrated_gradients", method_params={"steps": 3},
                 attack="topk", epsilon=0.2, step_size=0.05, steps=3, attack_k=6, w=1,
                 select_k=5, seed=unit_seed(0, "toy", "test", 0))
    a = attribution_map(model, x, "integrated_gradients", {"steps": 12}, target=res.label_orig)
    b = attribution_map(model, res.x_adv, "integrated_gradients", {"steps": 12},
                        target=res.label_orig)
    want = metrics.compare(a, b, 5, 1)
    for key in metrics.METRIC_KEYS:
        np.testing.assert_allclose(df[metric_column(key, 5, 1)], want[key].numpy(),
                                   atol=1e-12, equal_nan=True)
    # The selection measure recorded is the attack loop's (3-step maps), which differs.
    assert df["sel_best"].tolist() == pytest.approx(res.history[:, -1].tolist())


def test_metric_columns_and_long_format(tmp_path):
    assert metric_column("lens_recall", 100, 1) == "lens_recall@k100_w1"
    assert parse_metric_column("lens_recall@k100_w1") == ("lens_recall", 100, 1)
    assert parse_metric_column("linf") is None
    assert parse_metric_column("nonsense@k1_w1") is None
    df = run(small_config(n_images=2, attacks=("random_sign",)), None, backend=BACKEND,
                device="cpu", progress=False)
    long = long_format(df)
    assert len(long) == 2 * len(metrics.METRIC_KEYS) * 2 * 3
    one = long[(long["image"] == 1) & (long["metric"] == "lens_recall") & (long["k"] == 10)
               & (long["w"] == 2)]
    assert one["value"].item() == df.loc[1, "lens_recall@k10_w2"]


# --------------------------------------------------------------------------------------------
# Resume
# --------------------------------------------------------------------------------------------

class Interrupt(Exception):
    pass


def test_resume_after_interruption_gives_the_same_rows(tmp_path, one_thread):
    cfg = small_config(n_images=6)
    full = run(cfg, tmp_path / "full", backend=BACKEND, device="cpu", progress=False)

    calls = []

    def stop_after_two(done, total, text):
        calls.append(done)
        if len(calls) == 2:
            raise Interrupt

    folder = tmp_path / "part"
    with pytest.raises(Interrupt):
        run(cfg, folder, backend=BACKEND, device="cpu", progress=stop_after_two)
    assert len(list((folder / "rows").glob("*.csv"))) == 2
    assert not (folder / "results.csv").exists()
    # A half-written temporary file of the killed process must not count.
    (folder / "rows" / ".toy__natural__saliency__topk__eps0.2__b00002.csv.123.tmp").write_text(
        "dataset,model\ntoy,nat")
    partial = load_results(folder)
    assert len(partial) == 4  # the two finished batches of 2 images
    with pytest.raises(ResultsError, match="not done yet"):
        load_results(folder, partial=False)

    resumed_units = []
    resumed = run(cfg, folder, backend=BACKEND, device="cpu",
                     progress=lambda d, t, s: resumed_units.append(s))
    total_units = len(plan_units(resolve_config(cfg, BACKEND)))
    assert len(resumed_units) == total_units - 2  # finished batches were not redone
    assert not list((folder / "rows").glob(".*.tmp"))
    assert len(resumed) == len(full) == 12
    pd.testing.assert_frame_equal(without_timings(resumed), without_timings(full))
    log = [json.loads(line) for line in (folder / "runs.jsonl").read_text().splitlines()]
    assert [r["event"] for r in log] == ["start", "start", "end"]
    assert log[1]["units_done_before"] == 2
    # Running again finds nothing to do and changes nothing.
    again = run(cfg, folder, backend=BACKEND, device="cpu",
                   progress=lambda d, t, s: pytest.fail("nothing should be recomputed"))
    pd.testing.assert_frame_equal(again, resumed)


# --------------------------------------------------------------------------------------------
# Two processes (gloo) = one process
# --------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, folder: str, cfg_json: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    cfg = EvalConfig.from_json(cfg_json)
    run(cfg, folder, backend=ToyBackend(), device="cpu", progress=False)


def test_two_gloo_processes_equal_one_process(tmp_path, one_thread):
    import torch.multiprocessing as mp

    cfg = small_config(models=("natural", "pgd"), attacks=("random_sign", "mass_center"),
                       n_images=5)
    single = run(cfg, tmp_path / "one", backend=BACKEND, device="cpu", progress=False)
    folder = tmp_path / "two"
    mp.spawn(_worker, args=(2, _free_port(), str(folder), cfg.to_json()), nprocs=2, join=True)
    two = load_results(folder, partial=False)
    assert len(two) == len(single) == 2 * 2 * 5
    pd.testing.assert_frame_equal(without_timings(two), without_timings(single))
    # The merged file of the 2-process run equals the single run's, row for row.
    a = pd.read_csv(tmp_path / "one" / "results.csv").drop(columns=TIMING)
    b = pd.read_csv(folder / "results.csv").drop(columns=TIMING)
    pd.testing.assert_frame_equal(a, b)
    log = [json.loads(line) for line in (folder / "runs.jsonl").read_text().splitlines()]
    assert log[0]["world_size"] == 2 and log[-1]["event"] == "end"


def test_unit_seed_depends_on_batch_start_only():
    s = unit_seed(0, "mnist", "test", 100)
    assert s == unit_seed(0, "mnist", "test", 100)
    assert s != unit_seed(0, "mnist", "test", 150)
    assert s != unit_seed(1, "mnist", "test", 100)
    assert 0 <= s < 2 ** 31


def test_batches_fixed_by_position_not_by_process_count():
    res = resolve_config(small_config(n_images=5, batch_size=2), BACKEND)
    units = plan_units(res)
    assert [(u.start, u.stop) for u in units if u.attack == "topk"] == [(0, 2), (2, 4), (4, 5)]
    assert len({u.name for u in units}) == len(units)


def test_plan_is_frozen_and_round_trips_through_json():
    cfg = small_config(methods=("saliency", "integrated_gradients"),
                       method_params={"integrated_gradients": {"steps": 12}},
                       attack_method_params={"integrated_gradients": {"steps": 3}})
    plan = resolve_config(cfg, BACKEND)
    toy = plan.per_dataset["toy"]
    assert (toy.eps, toy.k, toy.w, toy.attack_k, toy.steps, toy.step_size, toy.attack_w) == (
        (0.2,), (5, 10), (0, 1, 2), 6, 3, 0.05, 1)
    assert dict(toy.model_weights) == {"natural": "v1:natural"}
    ig = plan.method_params["integrated_gradients"]
    assert ig.report["steps"] == 12 and ig.attack["steps"] == 3
    with pytest.raises(AttributeError):
        plan.seed = 1  # frozen
    with pytest.raises(TypeError):
        ig.report["steps"] = 1  # read-only parameters
    assert Plan.from_json(json.loads(json.dumps(plan.to_json()))) == plan


@pytest.mark.parametrize("folder", sorted(p.parent.name for p in RESULTS.glob("*/config.json")))
def test_committed_results_folders_resolve_to_the_same_json(folder):
    """The frozen plan reads the committed folders' ``resolved`` entry and writes it back
    unchanged (so resuming or reading them sees no difference)."""
    stored = json.loads((RESULTS / folder / "config.json").read_text(encoding="utf-8"))
    text = json.dumps(stored["resolved"], indent=2, ensure_ascii=False)
    plan = Plan.from_json(stored["resolved"])
    assert json.dumps(plan.to_json(), indent=2, ensure_ascii=False) == text
    assert sum(u.n for u in plan_units(plan)) == len(load_results(RESULTS / folder))


def test_registry_backend_reads_test_images_start_to_stop(monkeypatch):
    """Both dataset kinds (uint8 arrays, and items one by one) give images start..stop-1."""
    x, y = toy_images()

    class ArrayDataset:  # MNIST-style: .data (N, H, W) uint8 and .targets
        data = (x[:, 0] * 255).round().to(torch.uint8)
        targets = y

        def __len__(self):
            return len(self.data)

    class ItemDataset:
        def __len__(self):
            return len(x)

        def __getitem__(self, i):
            return x[i], int(y[i])

    for ds, want in ((ArrayDataset(), ArrayDataset.data[3:7].unsqueeze(1).float() / 255),
                     (ItemDataset(), x[3:7])):
        monkeypatch.setattr(backend_module.data, "load_test_set", lambda d, root=None, _ds=ds: _ds)
        xs, ys, idx = RegistryBackend().load_images("mnist", "test", 3, 7)
        assert torch.equal(xs, want) and ys.tolist() == y[3:7].tolist() and idx == [3, 4, 5, 6]

# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("field,value,needle", [
    ("datasets", ("toy", "imagenet1k"), "unknown dataset 'imagenet1k'; allowed: toy, toy2"),
    ("models", ("natural", "robust"), "unknown model 'robust' for dataset 'toy'; allowed: "
                                      "natural, pgd"),
    ("methods", ("saliency", "gradcam"), "unknown method 'gradcam'; allowed: saliency, "
                                         "integrated_gradients"),
    ("attacks", ("topk", "pgd"), "unknown attack 'pgd'; allowed: topk, mass_center"),
    ("attacks", ("targeted",), "needs a hand-drawn region"),
    ("k", (5, 65), "k must be between 1 and H*W = 64"),
    ("w", (-1,), "w (neighbourhood radius) must be an integer >= 0"),
    ("eps", (1.5,), "eps values must be in [0, 1]"),
    ("n_images", 13, "toy has 12 images in source 'test'"),
    ("source", "train", "source must be one of test, samples"),
    ("batch_size", 0, "batch_size must be an integer >= 1"),
    ("method_params", {"saliency": {"steps": 3}}, "unknown parameter 'steps'"),
    ("method_params", {"integrated_gradients": {"steps": 3}}, "not evaluated"),
    ("measure", "accuracy", "unknown measure 'accuracy'; allowed: topk_intersection"),
])
def test_bad_configuration_names_what_is_allowed(field, value, needle):
    with pytest.raises(ValueError) as info:
        resolve_config(small_config(**{field: value}), BACKEND)
    assert needle in str(info.value)


def test_resume_with_a_different_configuration_is_refused(tmp_path):
    folder = tmp_path / "r"
    run(small_config(n_images=2, attacks=("random_sign",)), folder, backend=BACKEND,
           device="cpu", progress=False)
    with pytest.raises(ConfigMismatch) as info:
        run(small_config(n_images=3, attacks=("random_sign",), seed=4), folder,
               backend=BACKEND, device="cpu", progress=False)
    msg = str(info.value)
    assert "cannot be resumed" in msg
    assert "config.n_images: 2 in the folder, 3 now" in msg
    assert "config.seed: 0 in the folder, 4 now" in msg
    # Same configuration, different model weights: refused too.
    with pytest.raises(ConfigMismatch, match=r"model_weights.natural: \"v1:natural\" in the "
                                                r"folder, \"v2:natural\" now"):
        run(small_config(n_images=2, attacks=("random_sign",)), folder,
               backend=ToyBackend("v2"), device="cpu", progress=False)
    # A non-empty folder that is not a results folder is refused too.
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ConfigMismatch, match="has no config.json"):
        run(small_config(n_images=2), other, backend=BACKEND, device="cpu", progress=False)


def test_one_run_at_a_time_per_folder(tmp_path):
    folder = tmp_path / "r"
    cfg = small_config(n_images=2, attacks=("random_sign",))
    run(cfg, folder, backend=BACKEND, device="cpu", progress=False)
    assert not (folder / ".lock").exists()  # released at the end
    # A live writer (this very process) holds the lock: refused, naming it.
    (folder / ".lock").write_text(json.dumps({"host": socket.gethostname(),
                                              "pid": os.getpid(), "run": "x", "time": "t"}))
    with pytest.raises(ConfigMismatch, match=f"being written by another run \\(pid "
                                                f"{os.getpid()}"):
        run(cfg, folder, backend=BACKEND, device="cpu", progress=False)
    # A lock whose process is gone is taken over.
    import subprocess
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (folder / ".lock").write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid,
                                              "run": "y", "time": "t"}))
    df = run(cfg, folder, backend=BACKEND, device="cpu", progress=False)
    assert len(df) == 2 and not (folder / ".lock").exists()


def test_malformed_results_files_name_path_and_line(tmp_path):
    folder = tmp_path / "r"
    run(small_config(n_images=2, attacks=("random_sign",)), folder, backend=BACKEND,
           device="cpu", progress=False)
    unit = next((folder / "rows").glob("*.csv"))
    lines = unit.read_text().splitlines()

    # A non-number in a metric column on the second data row (line 3).
    cells = lines[2].split(",")
    col = lines[0].split(",").index("lens_recall@k5_w1")
    cells[col] = "abc"
    unit.write_text("\n".join(lines[:2] + [",".join(cells)]) + "\n")
    with pytest.raises(ResultsError) as info:
        load_results(folder)
    assert str(unit) in str(info.value) and "line 3" in str(info.value)
    assert "'lens_recall@k5_w1' holds 'abc', which is not a number" in str(info.value)

    # A truncated row.
    unit.write_text("\n".join(lines[:2] + [lines[2][:40]]) + "\n")
    with pytest.raises(ResultsError, match=r"line 3: \d+ fields, expected \d+"):
        load_results(folder)

    # A foreign CSV.
    unit.write_text("a,b\n1,2\n")
    with pytest.raises(ResultsError, match="line 1: the header lacks column"):
        load_results(folder)

    # A broken config.json.
    (folder / "config.json").write_text('{"format": "explorer-evaluate/1",\n "config": }')
    with pytest.raises(ResultsError, match=r"config.json, line 2: not valid JSON"):
        load_results(folder)
    with pytest.raises(ResultsError, match="has no config.json"):
        load_results(tmp_path)


def test_cli_reports_bad_names_without_traceback(tmp_path, capsys):
    from explorer.__main__ import main

    code = main(["evaluate", "--datasets", "mnist", "cifar10", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2
    assert "unknown dataset 'cifar10'; allowed: mnist, fashion_mnist" in err
    assert "Traceback" not in err
    code = main(["evaluate", "--datasets", "mnist", "--eps", "0.3", "lots",
                 "--out", str(tmp_path / "x")])
    assert code == 2
    err = capsys.readouterr().err
    assert "--eps values must be numbers (0.3, 8/255) or 'paper'; got 'lots'" in err


def test_parse_helpers():
    assert parse_number("8/255") == pytest.approx(8 / 255)
    assert parse_number("0.3") == 0.3
    with pytest.raises(ValueError, match="8/255"):
        parse_number("1/0")
    assert parse_method_params(["integrated_gradients.steps=20",
                                   "integrated_gradients.baseline=blur"]) == {
        "integrated_gradients": {"steps": 20, "baseline": "blur"}}
    with pytest.raises(ValueError, match="METHOD.NAME=VALUE"):
        parse_method_params(["steps=20"])
    with pytest.raises(ValueError, match="unknown method 'ig'"):
        parse_method_params(["ig.steps=20"])
    assert math.isfinite(parse_number(1))


# --------------------------------------------------------------------------------------------
# Bookkeeping, chance levels, restarts, misclassified images (results format version 2)
# --------------------------------------------------------------------------------------------

def test_bookkeeping_and_chance_columns_equal_the_library():
    from explorer import chance

    cfg = small_config(n_images=4, batch_size=4, restarts=2, beta=(1.0, 10.0), k=(5,),
                       w=(0, 1))
    df = run(cfg, None, backend=BACKEND, device="cpu", progress=False)
    df = df[df["attack"] == "topk"].reset_index(drop=True)
    x, _ = toy_images()
    seed = unit_seed(0, "toy", "test", 0)
    res = attack(ToyNet(1).eval(), x[:4], method="saliency", attack="topk", epsilon=0.2,
                 step_size=0.05, steps=3, attack_k=6, w=1, seed=seed, restarts=2,
                 beta=(1.0, 10.0), select_k=5)
    assert df["found"].tolist() == res.found.tolist()
    assert df["attacked"].all()
    want_restart = torch.where(res.found, res.best_restart, -1)
    assert df["restart_won"].tolist() == want_restart.tolist()
    assert df["noise_won"].tolist() == (res.noise_won & res.found).tolist()
    np.testing.assert_allclose(df["flip_share"], res.flip_share.double().numpy())
    assert df["steps_run"].eq(6).all()  # 2 restarts of 3 steps
    d = chance.derangement(4, seed)
    for w in (0, 1):
        counts = metrics.pair_set_counts(res.map_orig, res.map_adv, 5, w)
        for key, v in counts.items():
            assert df[extra_column("count", key, 5, w)].tolist() == v.double().tolist()
        perm = chance.permutation_chance(res.map_orig, res.map_adv, 5, w, seed=seed)
        _, unrel = chance.unrelated_scores(res.map_orig, 5, w, pairs=d)
        exact = {"topk_intersection", "lens_recall", "lens_precision", "spearman", "kendall"}
        for key in metrics.METRIC_KEYS:
            got = df[extra_column("perm", key, 5, w)].to_numpy()
            if key in exact or (w == 0 and key != "center_shift"):
                np.testing.assert_allclose(got, perm[key].numpy(), atol=1e-12, equal_nan=True)
                score = df[metric_column(key, 5, w)].to_numpy().copy()
                norm = chance.normalise(score, perm[key].numpy(),
                                        metrics.METRICS[key].higher_is_better)
                np.testing.assert_allclose(df[extra_column("norm", key, 5, w)], norm,
                                           atol=1e-12, equal_nan=True)
            else:  # Monte-Carlo keys are recorded only with chance_mc
                assert np.isnan(got).all()
            np.testing.assert_allclose(df[extra_column("unrel", key, 5, w)],
                                       unrel[key].numpy(), atol=1e-12, equal_nan=True)


def test_chance_columns_of_several_k_equal_one_library_call_per_k():
    # The runner computes the chance levels of all k of a w at once; each k's columns are the
    # library's values at that k alone.
    from types import SimpleNamespace

    from explorer import chance
    from explorer.evaluation import runner

    g = torch.Generator().manual_seed(21)
    a = torch.rand(5, 6, 6, generator=g) ** 2
    b = (torch.rand(5, 6, 6, generator=g) * 3).floor()  # ties
    plan = SimpleNamespace(columns_version=2, chance_mc=True)
    values = runner._scores(plan, SimpleNamespace(k=(3, 8, 20), w=(0, 2)), a, b, seed=4)
    d = chance.derangement(5, 4)
    for w in (0, 2):
        for k in (3, 8, 20):
            perm = chance.permutation_chance(a, b, k, w, seed=4)
            _, unrel = chance.unrelated_scores(a, k, w, pairs=d)
            for key in metrics.METRIC_KEYS:
                for name, want in (("perm", perm[key]), ("unrel", unrel[key])):
                    got = values[extra_column(name, key, k, w)]
                    assert torch.equal(got.nan_to_num(-9), want.double().nan_to_num(-9)), \
                        (name, key, k, w)


def test_only_correctly_classified_images_are_attacked_by_default():
    x, y = toy_images()
    model = ToyNet(1).eval()
    with torch.no_grad():
        correct = (model(x[:6]).argmax(1) == y[:6]).tolist()
    assert 0 < sum(correct) < 6  # the toy labels are random: some of each
    df = run(small_config(n_images=6, batch_size=6, all_images=False, attacks=("topk",)),
             None, backend=BACKEND, device="cpu", progress=False)
    assert df["correct"].tolist() == correct
    assert df["attacked"].tolist() == correct
    skipped = df[~df["attacked"]]
    assert not skipped["found"].any() and (skipped["linf"] == 0).all()
    assert (skipped["restart_won"] == -1).all()
    assert skipped[metric_column("topk_intersection", 5, 1)].isna().all()
    assert skipped[extra_column("unrel", "topk_intersection", 5, 1)].isna().all()
    attacked = df[df["attacked"]]
    assert attacked[metric_column("topk_intersection", 5, 1)].notna().all()
    # The attacked images are those of a direct attack on the correctly classified subset.
    keep = torch.tensor(correct)
    res = attack(model, x[:6][keep], method="saliency", attack="topk", epsilon=0.2,
                 step_size=0.05, steps=3, attack_k=6, w=1, select_k=5,
                 seed=unit_seed(0, "toy", "test", 0))
    want = metrics.compare(res.map_orig, res.map_adv, 5, 1)["topk_intersection"]
    np.testing.assert_allclose(attacked[metric_column("topk_intersection", 5, 1)],
                               want.numpy(), atol=1e-12)


def test_version_1_plans_keep_their_columns_and_cli_flags(tmp_path):
    from explorer.__main__ import build_parser
    from explorer.evaluation.cli import config_from_args

    args = build_parser().parse_args(["evaluate", "--datasets", "toy", "--out", "o", "--beta",
                                      "1", "10", "--measure", "kendall", "--chance-mc"])
    cfg = config_from_args(args)
    assert (cfg.beta, cfg.restarts, cfg.all_images, cfg.chance_mc, cfg.measure) == (
        (1.0, 10.0), 3, False, True, "kendall")
    args = build_parser().parse_args(["evaluate", "--datasets", "toy", "--out", "o",
                                      "--restarts", "1", "--all-images"])
    cfg = config_from_args(args)
    assert (cfg.beta, cfg.restarts, cfg.all_images, cfg.chance_mc) == (10.0, 1, True, False)

    stored = json.loads((RESULTS / "repro-sg" / "config.json").read_text(encoding="utf-8"))
    old = Plan.from_json(stored["resolved"])
    assert (old.columns_version, old.restarts, old.all_images) == (1, 1, True)
    assert "attacked" not in old.columns("mnist")
    new = resolve_config(small_config(restarts=3, beta=(1, 10, 30), measure="kendall"), BACKEND)
    assert new.columns_version == 2 and new.betas == (1.0, 10.0, 30.0)
    assert Plan.from_json(json.loads(json.dumps(new.to_json()))) == new
    with pytest.raises(ValueError, match="restarts must be an integer >= 1"):
        resolve_config(small_config(restarts=0), BACKEND)
    with pytest.raises(ValueError, match="beta values must be finite numbers > 0"):
        resolve_config(small_config(beta=(1.0, -2.0)), BACKEND)
