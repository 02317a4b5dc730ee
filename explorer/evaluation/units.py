"""Units of work: one batch of images for one (dataset, model, method, attack, ε).

Batch boundaries are fixed by the image positions (``[b·B, (b+1)·B)``), never by the number of
processes, and the random seed of a unit (:func:`unit_seed`) depends only on the configuration
seed, the dataset, the image source and the batch's first image. So a unit computes the same
rows whichever process runs it, and a run split over any number of processes gives the rows of
a single-process run.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Mapping

from ..attacks import ATTACKS
from .plan import Plan

__all__ = ["Unit", "plan_units", "unit_seed", "unit_cost"]


@dataclass(frozen=True, order=True)
class Unit:
    """One batch of images for one (dataset, model, method, attack, ε); ``order`` is its place
    in the canonical order (the order of the merged rows)."""

    order: tuple
    dataset: str
    model: str
    method: str
    attack: str
    epsilon: float
    batch: int
    start: int   # position in the selection (0 = image_offset)
    stop: int

    @property
    def name(self) -> str:
        """The unit's file stem in the results folder."""
        return (f"{self.dataset}__{self.model}__{self.method}__{self.attack}__"
                f"eps{self.epsilon:.6g}__b{self.batch:05d}")

    @property
    def n(self) -> int:
        """Number of images."""
        return self.stop - self.start


def plan_units(plan: Plan) -> list[Unit]:
    """Every unit of the plan, in the canonical order."""
    units = []
    n, bs = plan.n_images, plan.batch_size
    batches = [(b, b * bs, min(n, (b + 1) * bs)) for b in range((n + bs - 1) // bs)]
    for di, d in enumerate(plan.datasets):
        dplan = plan.per_dataset[d]
        for mi, model in enumerate(plan.models):
            for hi, method in enumerate(plan.methods):
                for ai, att in enumerate(plan.attacks):
                    for ei, eps in enumerate(dplan.eps):
                        for b, start, stop in batches:
                            units.append(Unit((di, mi, hi, ai, ei, b), d, model, method, att,
                                              float(eps), b, start, stop))
    return units


def unit_cost(unit: Unit, plan: Plan) -> float:
    """Rough relative cost of a unit, for the progress bar's ETA only: images × model passes.

    An iterative gradient attack step costs about 4 passes (a double backward and the real
    model's map) per point of the method (path points, noisy copies); a random step 2; the maps
    of x and of x' with the reported parameters add 2 each.
    """
    info = ATTACKS[unit.attack]
    mplan = plan.method_params[unit.method]

    def points(params: Mapping) -> int:
        return max(1, int(params.get("steps", params.get("n_samples", 1))))

    steps = plan.per_dataset[unit.dataset].steps if info.iterative else 1
    per_step = 4 if info.uses_gradient else 2
    return unit.n * (points(mplan.attack) * (per_step * steps + 2) + 4 * points(mplan.report))


def unit_seed(seed: int, dataset: str, source: str, first_image: int) -> int:
    """Seed of the batch that starts at selection position ``first_image``: independent of the
    model, method, attack, ε and of which process runs it (so random noise is paired)."""
    return zlib.crc32(f"{seed}|{dataset}|{source}|{first_image}".encode()) & 0x7FFFFFFF
