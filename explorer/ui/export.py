"""Export of a view: a JSON record that reproduces it, and the figure panel as PNG / PDF."""

from __future__ import annotations

import json
import platform
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Sequence

import numpy as np
import plotly
import streamlit
import torch

import explorer
from explorer import metrics, viz

from .common import fmt as fmt_value

__all__ = ["ExportContext", "panel_bytes", "versions", "view_json"]


@dataclass(frozen=True, eq=False)
class ExportContext:
    """What the k / w panel needs to export the current view."""

    config: dict[str, Any]  # Config.to_dict()
    query: dict[str, str]  # URL query parameters reproducing the view
    model: dict[str, Any]  # {"sha256": ..., "card": ...}
    input_name: str
    image: np.ndarray  # (C, H, W)
    images_b: dict[str, np.ndarray]  # pair label -> perturbed image (C, H, W)
    predictions: dict[str, Any] = field(default_factory=dict)
    attack_summary: str = ""


def versions() -> dict[str, str]:
    # Lazy: matplotlib and torchvision take about a second to import and only an export needs them.
    import matplotlib
    import torchvision

    return {
        "explorer": explorer.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": np.__version__,
        "streamlit": streamlit.__version__,
        "plotly": plotly.__version__,
        "matplotlib": matplotlib.__version__,
    }


def _clean(value: Any) -> Any:
    """JSON-safe: NaN -> None, numpy scalars -> python."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return None if v != v else v
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def view_json(ctx: ExportContext, *, k: int, w: int, labels: Sequence[str],
              values: Sequence[dict[str, float]]) -> str:
    """The JSON record: configuration, scores of every pair at (k, w), seed, model, versions."""
    query = dict(ctx.query)
    query["k"], query["w"] = str(k), str(w)
    record = {
        "what": "attribution-robustness explorer view",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": {**ctx.config, "k": k, "w": w},
        "seed": ctx.config.get("seed"),
        "url_query": "?" + urllib.parse.urlencode(query),
        "input": ctx.input_name,
        "model": {"dataset": ctx.config.get("dataset"), "name": ctx.config.get("model"),
                  "sha256": ctx.model.get("sha256"), "card": ctx.model.get("card")},
        "predictions": ctx.predictions,
        "attack": ctx.attack_summary,
        "scores": {label: {key: vals[key] for key in metrics.METRIC_KEYS}
                   for label, vals in zip(labels, values)},
        "metrics": {key: {"name": info.name, "formula": info.formula}
                    for key, info in metrics.METRICS.items()},
        "versions": versions(),
        "citation": ["Kamath et al., Rethinking Robustness of Model Attributions, AAAI 2024",
                     "Ghorbani et al., Interpretation of Neural Networks is Fragile, AAAI 2019"],
    }
    return json.dumps(_clean(record), indent=2, ensure_ascii=False)


def panel_bytes(ctx: ExportContext, *, label: str, a: np.ndarray, b: np.ndarray,
                masks: dict[str, np.ndarray], k: int, w: int, values: dict[str, float],
                fmt: str) -> bytes:
    """The figure panel of one pair as PNG or PDF (matplotlib: works offline)."""
    cfg = ctx.config
    title = (f"{cfg.get('dataset')} · {cfg.get('model')} · {cfg.get('method')} · "
             f"{label} · k = {k}, w = {w} · {ctx.input_name}")
    shown = ("topk_intersection", "lens_recall", "lens_precision", "spearman", "lens_spearman",
             "kendall", "topk_div_intersection", "center_shift")
    caption = "   ".join(f"{metrics.METRICS[key].name} = {fmt_value(values[key])}"
                         for key in shown if key in values)
    fig = viz.export_panel(ctx.image, ctx.images_b[label], a, b, masks, k=k, w=w, title=title,
                           caption=caption)
    return viz.figure_bytes(fig, fmt)
