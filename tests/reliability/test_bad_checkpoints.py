"""Bad user checkpoints: each is refused with a message saying what was wrong and what is
accepted, nothing in the file runs, and a good checkpoint still loads afterwards."""

from __future__ import annotations

import io
import pickle

import pytest
import torch

from explorer import models


def _blob(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def good_state() -> dict:
    torch.manual_seed(0)
    return models.build_architecture("mnist", "small_cnn").state_dict()


def _refused(blob: bytes) -> str:
    with pytest.raises(models.CheckpointError) as err:
        models.load_user_checkpoint("mnist", "small_cnn", blob)
    return str(err.value)


def _still_works(state: dict) -> None:
    net = models.load_user_checkpoint("mnist", "small_cnn", _blob(state))
    out = net(torch.rand(2, 1, 28, 28))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


@pytest.mark.parametrize("value, where", [
    (float("nan"), "features.0.weight"),
    (float("inf"), "classifier.1.bias"),
    (float("-inf"), "classifier.3.weight"),
])
def test_non_finite_weights(good_state, value, where):
    bad = {k: v.clone() for k, v in good_state.items()}
    bad[where].view(-1)[0] = value
    msg = _refused(_blob(bad))
    n = good_state[where].numel()
    assert f"non-finite weights (NaN or infinity) in {where} (1 of {n})" in msg
    assert "Only finite weights are accepted" in msg
    _still_works(good_state)


def test_all_nan_checkpoint_lists_the_tensors(good_state):
    bad = {k: torch.full_like(v, float("nan")) for k, v in good_state.items()}
    msg = _refused(_blob(bad))
    assert "features.0.weight (400 of 400)" in msg
    for key, value in good_state.items():  # all eight tensors, none elided
        assert f"{key} ({value.numel()} of {value.numel()})" in msg
    assert "more)" not in msg
    _still_works(good_state)


class _Payload:
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_pickled_code_is_never_run(good_state, tmp_path):
    marker = tmp_path / "ran"
    for blob in (_blob({**good_state, "features.0.weight": _Payload(marker)}),
                 pickle.dumps({"x": _Payload(marker)}, protocol=2)):
        msg = _refused(blob)
        assert "refused: the file holds Python objects other than tensors" in msg
        assert "torch.save(model.state_dict(), path)" in msg
        assert not marker.exists()
    _still_works(good_state)


def test_a_whole_pickled_module_is_refused(good_state):
    net = models.build_architecture("mnist", "small_cnn")
    msg = _refused(_blob(net))  # torch.save(model): the class is pickled, not only weights
    assert "refused: the file holds Python objects" in msg
    _still_works(good_state)


def test_wrong_keys(good_state):
    bad = {("layer." + k): v for k, v in good_state.items()}
    msg = _refused(_blob(bad))
    assert "does not fit architecture mnist/small_cnn" in msg
    assert "missing keys: features.0.weight" in msg and "unexpected keys: layer.features.0.weight" in msg
    _still_works(good_state)


def test_wrong_shapes(good_state):
    bad = dict(good_state)
    bad["classifier.3.weight"] = torch.zeros(7, 256)
    msg = _refused(_blob(bad))
    assert "wrong shapes: classifier.3.weight: file (7, 256) vs model (10, 256)" in msg
    _still_works(good_state)


@pytest.mark.parametrize("blob, expected", [
    (b"", "the checkpoint file is empty"),
    (b"PK\x03\x04 not really a zip" * 10, "not a readable PyTorch checkpoint"),
    (_blob([1, 2, 3]), "the checkpoint is not a state_dict"),
    (_blob({"features.0.weight": "text"}), "the checkpoint is not a state_dict"),
])
def test_not_a_state_dict(good_state, blob, expected):
    assert expected in _refused(blob)
    _still_works(good_state)
