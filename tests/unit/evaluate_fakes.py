"""Small fakes for the evaluation tests: a toy dataset of 8×8 images and two tiny ReLU CNNs.

Importable by spawned worker processes (module-level, picklable), so the 2-process test uses the
same fakes as the single-process one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from explorer.evaluation.backend import Backend

SIZE = (8, 8)
N_IMAGES = 12


@dataclass(frozen=True)
class ToyDefaults:
    epsilon: float = 0.2
    attack_k: int = 6
    eval_k: int = 5
    step_size: float = 0.05
    steps: int = 3
    w: int = 1


@dataclass(frozen=True)
class ToyInfo:
    key: str
    size: tuple = SIZE
    defaults: ToyDefaults = ToyDefaults()


class ToyNet(nn.Module):
    """conv3×3(1→4) - ReLU - fc(4·H·W → 3); weights drawn from a fixed seed."""

    def __init__(self, seed: int):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.act = nn.ReLU()
        self.fc = nn.Linear(4 * SIZE[0] * SIZE[1], 3)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)

    def forward(self, x):
        return self.fc(self.act(self.conv(x)).flatten(1))


def toy_images(n: int = N_IMAGES) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(123)
    x = torch.rand((n, 1) + SIZE, generator=g)
    y = torch.randint(0, 3, (n,), generator=g)
    return x, y


class ToyBackend(Backend):
    MODELS = {"natural": 1, "pgd": 2}

    def dataset_keys(self):
        return ("toy", "toy2")

    def dataset_info(self, dataset):
        if dataset not in self.dataset_keys():
            raise ValueError(dataset)
        return ToyInfo(dataset)

    def model_names(self, dataset):
        return list(self.MODELS)

    def __init__(self, weights_tag: str = "v1"):
        self.weights_tag = weights_tag

    def load_model(self, dataset, name, device):
        return ToyNet(self.MODELS[name]).to(device).eval()

    def model_fingerprint(self, dataset, name):
        return f"{self.weights_tag}:{name}"

    def n_available(self, dataset, source):
        return N_IMAGES

    def load_images(self, dataset, source, start, stop):
        x, y = toy_images()
        return x[start:stop], y[start:stop], list(range(start, stop))
