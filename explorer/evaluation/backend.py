"""Where the evaluator's datasets, models and images come from.

:class:`Backend` is the interface (tests pass small fakes); :class:`RegistryBackend` serves the
shipped datasets and models of :mod:`explorer.data` and :mod:`explorer.models`.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from .. import data, models

__all__ = ["Backend", "RegistryBackend"]


class Backend:
    """The project registries seen by the evaluator. Subclass for tests."""

    def dataset_keys(self) -> Sequence[str]:
        raise NotImplementedError

    def dataset_info(self, dataset: str):
        """An object with ``size`` (H, W) and ``defaults`` (``PaperDefaults``)."""
        raise NotImplementedError

    def model_names(self, dataset: str) -> Sequence[str]:
        raise NotImplementedError

    def load_model(self, dataset: str, name: str, device: str) -> torch.nn.Module:
        raise NotImplementedError

    def check_model(self, dataset: str, name: str) -> None:
        """Raise (with a message saying what to do) when the model cannot be loaded; called
        before any work starts."""

    def model_fingerprint(self, dataset: str, name: str) -> str | None:
        """A digest of the model's weights (recorded in config.json, so that resuming with
        different weights is refused), or None when unknown."""
        return None

    def n_available(self, dataset: str, source: str) -> int | None:
        raise NotImplementedError

    def load_images(self, dataset: str, source: str, start: int, stop: int
                    ) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """Images ``start..stop-1`` of the source: ``x (n, C, H, W)`` in [0, 1], labels ``(n,)``
        (-1 unknown), and each image's index (test-set index or sample number)."""
        raise NotImplementedError


class RegistryBackend(Backend):
    """``explorer.data`` and ``explorer.models``: the shipped datasets and models."""

    def __init__(self, data_root=None):
        self.data_root = data_root
        self._test_sets: dict[str, Any] = {}

    def dataset_keys(self):
        return tuple(data.DATASETS)

    def dataset_info(self, dataset):
        return data.get_dataset(dataset)

    def model_names(self, dataset):
        return [m.name for m in models.models_for(dataset)]

    def load_model(self, dataset, name, device):
        return models.load(dataset, name, device=device)

    def check_model(self, dataset, name):
        if not models.is_available(dataset, name):
            models.load(dataset, name)  # raises ModelUnavailable saying what to do

    def model_fingerprint(self, dataset, name):
        path = models.MODELS[(dataset, name)].weights_path
        return f"sha256:{models.sha256_file(path)}" if path is not None and path.exists() else None

    def _test_set(self, dataset):
        if dataset not in self._test_sets:
            self._test_sets[dataset] = data.load_test_set(dataset, root=self.data_root)
        return self._test_sets[dataset]

    def n_available(self, dataset, source):
        if source == "samples":
            return int(data.load_samples(dataset).x.shape[0])
        return len(self._test_set(dataset))

    def load_images(self, dataset, source, start, stop):
        if source == "samples":
            s = data.load_samples(dataset)
            return s.x[start:stop].float(), s.labels[start:stop].long(), list(range(start, stop))
        x, y = data.as_tensors(self._test_set(dataset), limit=stop - start, start=start)
        return x, y, list(range(start, stop))
