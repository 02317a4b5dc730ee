"""The view configuration: one frozen dataclass and its cache keys (no streamlit import).

A :class:`Config` says everything that determines what the explorer page shows. It goes into
the page's link (``link.to_query(link.link_state(cfg))``) and into the exported JSON. All values
are kept in the library's units (ε in [0, 1] pixel units, whatever the dataset).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from explorer import attacks
from explorer.device import CHOICES as _DEVICE_CHOICES

__all__ = ["CHART_W", "Config", "DEVICES", "SOURCES", "W_MAX", "attack_specs", "prefetch_ws"]

SOURCES = ("sample", "index", "upload")
DEVICES = _DEVICE_CHOICES  # the device radio and the link accept the same values
W_MAX = 10  # largest w offered by the slider
CHART_W = tuple(range(0, 6))  # the w values of the "scores vs w" chart (prefetched)


def prefetch_ws(w: int, reach: int = 2) -> tuple[int, ...]:
    """The w values computed ahead in the background while ``w`` is shown, nearest first: the
    chart's (:data:`CHART_W`) and those within ``reach`` slider steps of ``w``, so the next w
    move finds its w-dependent numbers ready wherever the slider stands."""
    near = range(max(0, w - reach), min(W_MAX, w + reach) + 1)
    return tuple(sorted(set(CHART_W) | set(near), key=lambda x: (abs(x - w), x)))


def attack_specs(attack_info) -> tuple:
    """The parameters a configuration carries for an attack: its own (but ``seed``, which is the
    sidebar's global seed) plus the selection parameters of the best iterate (measure, w, and β
    where the attack differentiates through the smooth surrogate)."""
    own = [p for p in attack_info.params if p.name != "seed"]
    names = {p.name for p in own}
    extra = [p for p in attacks.SELECTION_PARAMS
             if p.name not in names and p.name != "seed"
             and (p.name != "beta" or attack_info.uses_gradient)]
    return tuple(own + extra)


@dataclass(frozen=True)
class Config:
    dataset: str
    model: str
    source: str = "sample"  # "sample" (bundled), "index" (test set), "upload"
    image: int = 0  # sample number or test-set index
    upload_sha: str | None = None
    method: str = "saliency"
    method_params: dict[str, Any] = field(default_factory=dict)
    attack: str = "topk"
    attack_params: dict[str, Any] = field(default_factory=dict)
    region: tuple[int, int, int, int] | None = None  # rows r0..r1, cols c0..c1 (inclusive)
    seed: int = 0
    device: str = "auto"
    k: int = 100
    w: int = 1

    # ------------------------------------------------------------------ keys for the caches
    def image_key(self) -> str:
        if self.source == "upload":
            return f"{self.dataset}:upload:{self.upload_sha}"
        return f"{self.dataset}:{self.source}:{self.image}"

    def method_items(self) -> tuple:
        return tuple(sorted(self.method_params.items()))

    def attack_items(self) -> tuple:
        return tuple(sorted(self.attack_params.items()))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["region"] = list(self.region) if self.region else None
        return d

    def fingerprint(self) -> str:
        """A short stable id of the attack-relevant configuration (not k, w)."""
        d = self.to_dict()
        d.pop("k")
        d.pop("w")
        raw = json.dumps(d, sort_keys=True, default=str)
        return hashlib.sha256(raw.encode()).hexdigest()[:16]
