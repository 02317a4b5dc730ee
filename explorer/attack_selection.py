"""The attacks' selection measure: one metric of :mod:`explorer.metrics` against a fixed original.

An attack keeps, per image, the label-preserving candidate that is best under this measure;
computing only the requested key, with the original map's masks built once, keeps the per-step
cost to one metric of the batch.
"""

from __future__ import annotations

import torch

from . import metrics

__all__ = ["SelectionMeasure"]


class SelectionMeasure:
    """``measure(b)`` = ``metrics.compare(a, b, k, w)[key]`` for a fixed original ``a``, computing
    only the requested key (the original map's masks are built once). Float64 ``(N,)``."""

    def __init__(self, key: str, a: torch.Tensor, k: int, w: int):
        self.key, self.a, self.k, self.w = key, a, k, w
        self.minimise = metrics.METRICS[key].higher_is_better
        if key in ("topk_intersection", "lens_recall", "lens_precision"):
            self.ta = metrics.topk_mask(a, k)
            self.nta = metrics.dilate(self.ta, w)
        elif key in ("topk_div_intersection", "lens_recall_div", "lens_precision_div"):
            self.da, _ = metrics.diverse_topk_mask(a, k, w)
            self.nda = metrics.dilate(self.da, w)
        elif key in ("lens_spearman", "lens_kendall"):
            self.pa = metrics.maxpool_map(a, w)
        elif key == "center_shift":
            self.ca = metrics.center_of_mass(a)

    def _frac(self, mask):
        return mask.sum(dim=(1, 2)).double() / self.k

    def __call__(self, b: torch.Tensor) -> torch.Tensor:
        key, k, w = self.key, self.k, self.w
        if key == "topk_intersection":
            return self._frac(self.ta & metrics.topk_mask(b, k))
        if key == "lens_recall":
            return self._frac(self.nta & metrics.topk_mask(b, k))
        if key == "lens_precision":
            return self._frac(self.ta & metrics.dilate(metrics.topk_mask(b, k), w))
        if key in ("topk_div_intersection", "lens_recall_div", "lens_precision_div"):
            db, _ = metrics.diverse_topk_mask(b, k, w)
            if key == "topk_div_intersection":
                return self._frac(self.da & db)
            if key == "lens_recall_div":
                return self._frac(self.nda & db)
            return self._frac(self.da & metrics.dilate(db, w))
        if key == "spearman":
            return metrics.spearman(self.a, b).double()
        if key == "kendall":
            return metrics.kendall(self.a, b).double()
        if key == "lens_spearman":
            return metrics.spearman(self.pa, metrics.maxpool_map(b, w)).double()
        if key == "lens_kendall":
            return metrics.kendall(self.pa, metrics.maxpool_map(b, w)).double()
        if key == "center_shift":
            return torch.linalg.vector_norm(self.ca - metrics.center_of_mass(b), dim=1).double()
        raise AssertionError(key)  # unreachable: keys are validated before

    def better(self, new: torch.Tensor, best: torch.Tensor) -> torch.Tensor:
        """Strictly better (NaN never is)."""
        return new < best if self.minimise else new > best
