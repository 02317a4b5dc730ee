"""Model registry, shipped weights and their cards, safe user checkpoints, training (explorer.models/train)."""

from __future__ import annotations

import io
import json
import pickle
import shlex
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from explorer import data, models, train
from explorer.__main__ import build_parser

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = [("mnist", "natural"), ("mnist", "pgd"), ("fashion_mnist", "natural"), ("fashion_mnist", "pgd")]
# Accuracy floors of the shipped models: (clean accuracy, robust accuracy under PGD-40 at the dataset's epsilon).
FLOORS = {
    ("mnist", "natural"): (0.99, None),
    ("mnist", "pgd"): (0.98, 0.85),
    ("fashion_mnist", "natural"): (0.90, None),
    ("fashion_mnist", "pgd"): (0.80, 0.65),
}


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network and an empty torch hub cache."""
    monkeypatch.setenv("EXPLORER_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    return tmp_path


# --------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------


def test_registry_keys_and_defaults():
    for key in SHIPPED:
        assert key in models.MODELS and models.MODELS[key].source == "shipped"
    for name in ("efficientnet_lite0", "squeezenet1_1", "resnet18", "resnet50"):
        assert ("imagenet", name) in models.MODELS
    assert models.default_model("imagenet").name == "efficientnet_lite0"
    assert models.default_model("mnist").name == "natural"
    for ds in ("gtsrb", "flowers102"):
        assert {m.name for m in models.models_for(ds)} == {"natural", "pgd"}
    for ds in data.DATASETS:
        assert models.models_for(ds), f"no model for {ds}"
    with pytest.raises(ValueError, match="models for mnist: natural, pgd"):
        models.load("mnist", "resnet")
    with pytest.raises(ValueError, match="unknown dataset"):
        models.load("svhn", "natural")


@pytest.mark.parametrize("dataset, arch", [(d, a) for d, a in models.ARCHITECTURES if d != "imagenet"])
def test_architectures_follow_the_dataset_size(dataset, arch):
    info = data.DATASETS[dataset]
    net = models.build_architecture(dataset, arch).eval()
    x = torch.rand(2, info.channels, *info.size)
    assert net(x).shape == (2, info.num_classes)
    # Activations are nn.ReLU modules (the smooth surrogate swaps them), none in place.
    relus = [m for m in net.modules() if isinstance(m, nn.ReLU)]
    assert len(relus) >= 3 and not any(m.inplace for m in relus)
    # Normalisation is inside: equal to running the layers on (x - mean) / std by hand.
    mean = torch.tensor(info.mean).view(1, -1, 1, 1)
    std = torch.tensor(info.std).view(1, -1, 1, 1)
    by_hand = net.classifier(net.features((x - mean) / std))
    assert torch.allclose(net(x), by_hand, atol=1e-6)
    # The normalisation constants are not part of the checkpoint.
    assert not any("normalize" in k for k in net.state_dict())


def test_convnet_refuses_too_small_images():
    with pytest.raises(ValueError, match="too small"):
        models.ConvNet(1, (4, 4), 10, (0.5,), (0.5,), widths=(8, 8, 8))


@pytest.mark.parametrize("dataset", ["gtsrb", "flowers102"])
def test_untrained_models_say_how_to_train(dataset):
    with pytest.raises(models.ModelUnavailable) as err:
        models.load(dataset, "natural")
    msg = str(err.value)
    assert f"python -m explorer train --dataset {dataset} --variant natural" in msg
    assert f"python -m explorer data import {dataset} DIR" in msg
    assert models.card(dataset, "natural") is None
    assert not models.is_available(dataset, "pgd")


# --------------------------------------------------------------------------------------
# Shipped models
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset, name", SHIPPED)
def test_shipped_model_card_is_true(dataset, name, offline):
    info = models.MODELS[(dataset, name)]
    path, card = info.weights_path, models.card(dataset, name)
    assert path.exists() and card is not None
    assert path.stat().st_size <= 5 * 1024 * 1024
    assert card["sha256"] == models.sha256_file(path)
    assert card["file_bytes"] == path.stat().st_size
    clean_floor, robust_floor = FLOORS[(dataset, name)]
    assert card["clean_accuracy"] >= clean_floor and card["clean_accuracy_n"] == 10000
    assert card["robust_accuracy_n"] >= 1000
    assert card["robust_eval"]["epsilon"] == pytest.approx(data.DATASETS[dataset].defaults.epsilon)
    if robust_floor is not None:
        assert card["robust_accuracy"] >= robust_floor
    assert card["torch_version"] and card["training"]["wall_time_s"] > 0
    assert len(card["training"]["history"]) == card["training"]["epochs"]
    # The recorded command parses with the CLI and names this model's configuration.
    args = build_parser().parse_args(shlex.split(card["training"]["command"])[3:])
    assert (args.dataset, args.variant, args.epochs, args.seed) == (
        dataset, name, card["training"]["epochs"], card["training"]["seed"],
    )
    assert card["parameters"] == sum(p.numel() for p in models.build_architecture(dataset, card["architecture"]).parameters())


@pytest.mark.parametrize("dataset, name", SHIPPED)
def test_shipped_model_classifies_bundled_samples(dataset, name, offline):
    model = models.load(dataset, name)
    assert not model.training
    assert all(not p.requires_grad or p.grad is None for p in model.parameters())
    s = data.load_samples(dataset)
    with torch.no_grad():
        logits = model(s.x)
    assert logits.shape == (len(s), data.DATASETS[dataset].num_classes)
    accuracy = (logits.argmax(1) == s.labels).float().mean().item()
    assert accuracy >= models.card(dataset, name)["clean_accuracy"] - 0.03


def test_pgd_models_are_more_robust_than_natural_ones_on_samples():
    """PGD-trained models keep their labels under a PGD attack where natural ones lose them."""
    for dataset in ("mnist", "fashion_mnist"):
        s = data.load_samples(dataset)
        x, y = s.x[::4], s.labels[::4]
        eps = data.DATASETS[dataset].defaults.epsilon
        acc = {}
        for name in ("natural", "pgd"):
            m = models.load(dataset, name)
            acc[name] = train.robust_accuracy(m, x, y, eps, steps=10, step_size=eps / 4)
        assert acc["pgd"] > acc["natural"] + 0.3, (dataset, acc)


def test_efficientnet_lite0_offline_on_bundled_photos(offline):
    model = models.load("imagenet", "efficientnet_lite0")
    assert not model.training and models.is_available("imagenet", "efficientnet_lite0")
    s = data.load_samples("imagenet")
    with torch.no_grad():
        top5 = model(s.x).topk(5, dim=1).indices
    names = data.DATASETS["imagenet"].class_names
    for i, n in enumerate(s.names):
        if n.startswith("coffee"):
            assert names[top5[i, 0]] == "espresso"
        if n.startswith("chelsea"):
            assert names.index("tabby") in top5[i].tolist()
    card = models.card("imagenet", "efficientnet_lite0")
    assert card["input"].endswith("in [0, 1]") and 0.7 < card["reference_top1"] < 0.8
    # ReLU6 modules (smoothable), none in place.
    relu6 = [m for m in model.modules() if isinstance(m, nn.ReLU6)]
    assert relu6 and not any(m.inplace for m in relu6)


@pytest.mark.parametrize("name", ["squeezenet1_1", "resnet18", "resnet50"])
def test_download_models_fail_fast_and_clearly_offline(name, offline):
    t0 = time.perf_counter()
    with pytest.raises(models.ModelUnavailable) as err:
        models.load("imagenet", name)
    assert time.perf_counter() - t0 < 5.0
    msg = str(err.value)
    assert "not downloaded" in msg and "offline" in msg and "Traceback" not in msg
    assert str(offline / "torch-home") in msg  # where to put the file
    assert not models.is_available("imagenet", name)
    card = models.card("imagenet", name)
    assert card["cached"] is False and 0.5 < card["reference_top1"] < 0.8


def test_download_models_without_network_probe_fail_fast(monkeypatch, tmp_path):
    monkeypatch.delenv("EXPLORER_OFFLINE", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(models, "_url_reachable", lambda url, timeout=3.0: False)
    with pytest.raises(models.ModelUnavailable, match="cannot be reached"):
        models.load("imagenet", "resnet18")


def test_url_probe_never_hangs():
    """A server that accepts the connection and never answers, and a closed port: both False, fast."""
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    try:
        for port in (silent.getsockname()[1], closed_port):
            t0 = time.perf_counter()
            assert models._url_reachable(f"http://127.0.0.1:{port}/w.pth", timeout=0.5) is False
            assert time.perf_counter() - t0 < 1.5
    finally:
        silent.close()


# --------------------------------------------------------------------------------------
# User checkpoints
# --------------------------------------------------------------------------------------


def _to_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def test_user_checkpoint_round_trip_and_accepted_layouts():
    torch.manual_seed(0)
    net = models.build_architecture("mnist", "small_cnn").eval()
    x = torch.rand(3, 1, 28, 28)
    sd = net.state_dict()
    for blob in (
        _to_bytes(sd),
        _to_bytes({"state_dict": sd, "epoch": 3}),
        _to_bytes({f"module.{k}": v for k, v in sd.items()}),
    ):
        loaded = models.load_user_checkpoint("mnist", "small_cnn", blob)
        assert not loaded.training
        assert torch.allclose(loaded(x), net(x), atol=1e-6)


def test_user_checkpoint_wrong_shapes_listed():
    other = models.ConvNet(1, (28, 28), 10, (0.1,), (0.3,), widths=(16, 32), hidden=64)
    with pytest.raises(models.CheckpointError) as err:
        models.load_user_checkpoint("mnist", "small_cnn", _to_bytes(other.state_dict()))
    msg = str(err.value)
    assert "wrong shapes" in msg and "classifier.1.weight: file (64, 1568) vs model (256, 1568)" in msg
    assert "classifier.3.weight" in msg


def test_user_checkpoint_missing_and_unexpected_keys_listed():
    sd = models.build_architecture("mnist", "small_cnn").state_dict()
    sd.pop("features.0.bias")
    sd["extra.weight"] = torch.zeros(2)
    with pytest.raises(models.CheckpointError, match="missing keys: features.0.bias.*unexpected keys: extra.weight"):
        models.load_user_checkpoint("mnist", "small_cnn", _to_bytes(sd))


class _Payload:
    """Unpickling this object opens (creates) ``path``: a stand-in for arbitrary code."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_malicious_checkpoint_refused_and_payload_not_run(tmp_path):
    # The payload is live: plain pickle runs it.
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_Payload(probe))).close()
    assert probe.exists()

    marker = tmp_path / "marker"
    for blob in (
        _to_bytes({"features.0.weight": _Payload(marker)}),  # torch zip format
        pickle.dumps({"features.0.weight": _Payload(marker)}, protocol=2),  # legacy raw pickle
    ):
        with pytest.raises(models.CheckpointError, match="refused: the file holds Python objects"):
            models.load_user_checkpoint("mnist", "small_cnn", blob)
        assert not marker.exists()
    # A newer-protocol raw pickle is not even parsed far enough to see the global.
    with pytest.raises(models.CheckpointError, match="not a readable PyTorch checkpoint"):
        models.load_user_checkpoint("mnist", "small_cnn", pickle.dumps([_Payload(marker)], protocol=4))
    assert not marker.exists()


def test_user_checkpoint_other_bad_files():
    with pytest.raises(models.CheckpointError, match="not a readable PyTorch checkpoint"):
        models.load_user_checkpoint("mnist", "small_cnn", b"garbage" * 100)
    with pytest.raises(models.CheckpointError, match="not a state_dict"):
        models.load_user_checkpoint("mnist", "small_cnn", _to_bytes(torch.zeros(3)))
    with pytest.raises(models.CheckpointError, match="empty"):
        models.load_user_checkpoint("mnist", "small_cnn", b"")
    with pytest.raises(models.CheckpointError, match="registered architectures: small_cnn"):
        models.load_user_checkpoint("mnist", "resnet18", b"x")
    assert issubclass(models.CheckpointError, ValueError)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_user_checkpoint_with_non_finite_weights_refused(bad):
    sd = models.build_architecture("mnist", "small_cnn").state_dict()
    sd["classifier.3.bias"] = sd["classifier.3.bias"].clone()
    sd["classifier.3.bias"][[2, 7]] = bad
    with pytest.raises(models.CheckpointError) as err:
        models.load_user_checkpoint("mnist", "small_cnn", _to_bytes(sd))
    msg = str(err.value)
    assert "non-finite weights (NaN or infinity) in classifier.3.bias (2 of 10)" in msg
    assert "Only finite weights are accepted" in msg
    assert models.non_finite_entries(sd) == ["classifier.3.bias (2 of 10)"]
    # The same file with finite weights loads.
    sd["classifier.3.bias"][[2, 7]] = 0.0
    assert models.non_finite_entries(sd) == []
    models.load_user_checkpoint("mnist", "small_cnn", _to_bytes(sd))


def test_trained_weights_with_nan_are_reported_not_loaded(tmp_path, monkeypatch):
    sd = models.build_architecture("gtsrb", "cnn3").state_dict()
    sd["features.0.weight"] = torch.full_like(sd["features.0.weight"], float("nan"))
    monkeypatch.setattr(models, "PRETRAINED_DIR", tmp_path)
    torch.save(sd, tmp_path / "gtsrb-natural.pt")
    with pytest.raises(models.ModelUnavailable, match=r"non-finite weights .* features\.0\.weight "
                       r"\(864 of 864\).*retrain it"):
        models.load("gtsrb", "natural")


def test_user_checkpoint_for_an_imagenet_architecture():
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.squeezenet1_1(weights=None).eval()
    model = models.load_user_checkpoint("imagenet", "squeezenet1_1", _to_bytes(net.state_dict()))
    x = torch.rand(1, 3, 224, 224)
    mean = torch.tensor(data.DATASETS["imagenet"].mean).view(1, 3, 1, 1)
    std = torch.tensor(data.DATASETS["imagenet"].std).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(model(x), net((x - mean) / std), atol=1e-5)


# --------------------------------------------------------------------------------------
# Training (PGD on the loss, a tiny seeded run)
# --------------------------------------------------------------------------------------


def test_pgd_linf_stays_in_the_ball_and_raises_the_loss():
    torch.manual_seed(0)
    net = models.build_architecture("mnist", "small_cnn").eval()
    x = data.load_samples("mnist").x[:16]
    y = net(x).argmax(1)
    eps = 0.1
    x_adv = train.pgd_linf(net, x, y, eps, 0.02, 10, generator=torch.Generator().manual_seed(0))
    assert (x_adv - x).abs().max() <= eps + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    ce = nn.functional.cross_entropy
    assert ce(net(x_adv), y) > ce(net(x), y)
    # eps = 0 leaves x unchanged
    assert torch.equal(train.pgd_linf(net, x, y, 0.0, 0.02, 3), x)


def test_robust_accuracy_of_a_constant_model_is_its_clean_accuracy():
    class Constant(nn.Module):
        def forward(self, x):
            return torch.tensor([[0.0, 1.0]]).expand(len(x), 2) + 0 * x.sum((1, 2, 3), keepdim=False)[:, None]

    x = torch.rand(10, 1, 5, 5)
    y = torch.tensor([1] * 7 + [0] * 3)
    assert train.clean_accuracy(Constant(), x, y) == pytest.approx(0.7)
    assert train.robust_accuracy(Constant(), x, y, 0.3, steps=3) == pytest.approx(0.7)


def _fake_mnist(root: Path, n_train=96, n_test=32):
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)

    def images(n):
        # class c: a bright vertical bar at column 2 + 2c (an easy, learnable task)
        labels = rng.integers(0, 10, n)
        arr = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
        for i, c in enumerate(labels):
            arr[i, :, 2 + 2 * c : 4 + 2 * c] = 255
        return arr, labels

    for prefix, n in (("train", n_train), ("t10k", n_test)):
        arr, labels = images(n)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, n, 28, 28) + arr.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n) + labels.astype(np.uint8).tobytes())


def test_tiny_training_run_is_seeded_and_writes_a_true_card(tmp_path):
    _fake_mnist(tmp_path / "data")
    cfg = train.TrainConfig("mnist", "pgd", epochs=2, seed=3, batch_size=32, pgd_steps=2,
                            ramp_epochs=1, threads=1, robust_eval_n=16, out_dir=str(tmp_path / "out"))
    logs = []
    card = train.train(cfg, root=tmp_path / "data", log=logs.append)
    weights = tmp_path / "out" / "mnist-pgd.pt"
    assert json.loads(weights.with_suffix(".json").read_text()) == card
    assert card["sha256"] == models.sha256_file(weights)
    assert card["clean_accuracy_n"] == 32 and card["robust_accuracy_n"] == 16
    assert [row["epoch"] for row in card["training"]["history"]] == [1, 2]
    assert card["training"]["history"][0]["epsilon"] < card["training"]["history"][1]["epsilon"] == pytest.approx(0.3)
    assert card["training"]["command"] == (
        "python -m explorer train --dataset mnist --variant pgd --epochs 2 --seed 3 --batch-size 32 "
        f"--pgd-steps 2 --ramp-epochs 1 --threads 1 --robust-eval-n 16 --out-dir {tmp_path / 'out'}"
    )
    assert card["clean_accuracy"] > 0.3  # the bars are learnable; chance is 0.1
    # Same command, from scratch: the same bytes.
    first = card["sha256"]
    card2 = train.train(cfg, root=tmp_path / "data", log=logs.append, resume=False)
    assert card2["sha256"] == first
    # A finished checkpoint is resumed (no epoch re-run) and gives the same file again.
    n_logs = len(logs)
    card3 = train.train(cfg, root=tmp_path / "data", log=logs.append)
    assert card3["sha256"] == first
    assert any("resumed" in line for line in logs[n_logs:])
    assert not any('"epoch"' in line for line in logs[n_logs:])
    # The loaded weights are what the card describes.
    net = models.build_architecture("mnist", "small_cnn")
    net.load_state_dict(torch.load(weights, weights_only=True))
    x, y = data.as_tensors(data.load_test_set("mnist", root=tmp_path / "data"))
    assert train.clean_accuracy(net, x, y) == pytest.approx(card["clean_accuracy"], abs=1e-5)


def test_train_config_rejects_bad_values():
    with pytest.raises(ValueError, match="allowed: natural, pgd"):
        train.TrainConfig("mnist", "fgsm", 1).resolved()
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        train.TrainConfig("mnist", "pgd", 0).resolved()
    with pytest.raises(ValueError, match="no trainable architecture for dataset 'imagenet'"):
        train.TrainConfig("imagenet", "pgd", 1).resolved()
    with pytest.raises(ValueError, match="cannot train architecture 'cnn3' on mnist; trainable: small_cnn"):
        train.TrainConfig("mnist", "pgd", 1, arch="cnn3").resolved()
    r = train.TrainConfig("fashion_mnist", "pgd", 8, pgd_steps=5).resolved()
    assert r.epsilon == pytest.approx(0.1) and r.pgd_step_size == pytest.approx(0.05) and r.lr_drop_epoch == 6


@pytest.mark.parametrize("dataset, name", [("mnist", "natural"), ("imagenet", "efficientnet_lite0")])
def test_models_work_with_the_smooth_surrogate(dataset, name, offline):
    """The attack needs a smooth copy: every activation is a module it can swap (ReLU / ReLU6)."""
    from explorer.surrogate import smooth_model

    model = models.load(dataset, name)
    x = data.load_samples(dataset).x[:2]
    with torch.no_grad():
        real = model(x)
        gaps = [(smooth_model(model, beta=b)(x) - real).abs().max().item() for b in (2.0, 50.0)]
    assert gaps[1] < gaps[0]  # converges to the real model as beta grows
    assert gaps[1] < 0.1 * real.abs().max().item()


def test_docs_quote_the_cards():
    """docs/models.md reports each shipped model's figures exactly as its card says."""
    text = (ROOT / "docs" / "models.md").read_text(encoding="utf-8")
    for dataset, name in SHIPPED:
        card = models.card(dataset, name)
        row = f"| {dataset}/{name} | {100 * card['clean_accuracy']:.2f}% | {100 * card['robust_accuracy']:.2f}% |"
        assert row in text, row
        assert card["training"]["command"] in text
