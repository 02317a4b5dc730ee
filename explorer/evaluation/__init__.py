"""Batch evaluation: attack many images, record every metric, summarise and report.

One module per concern (each is imported on its own; this package imports none of them):

- :mod:`~explorer.evaluation.schema`: the row columns (names, types, the ``METRIC@kK_wW`` wide
  metric columns, the versioned bookkeeping and chance columns).
- :mod:`~explorer.evaluation.plan`: what to evaluate (:class:`EvalConfig`, as asked) and its
  resolution (:class:`Plan`, paper settings filled in per dataset), as written to
  ``config.json``.
- :mod:`~explorer.evaluation.units`: the units of work (one batch of images for one dataset,
  model, method, attack and ε), their order, seeds and relative cost.
- :mod:`~explorer.evaluation.folder`: the results folder (configuration file, rows CSV files,
  atomic writes, lock, merge, run log, loading and compact export).
- :mod:`~explorer.evaluation.backend`: where datasets, models and images come from.
- :mod:`~explorer.evaluation.runner`: evaluating a unit and running a plan, on one process or
  sharded with torch.distributed.
- :mod:`~explorer.evaluation.summary`: loading several folders, bootstrap intervals, the
  reference slice and summary tables.
- :mod:`~explorer.evaluation.claims`: the paper's four claims, each with its rule, its statistic's
  bootstrap interval and verdict, and the verdict table generated from them.
- :mod:`~explorer.evaluation.deviations`: the report's "Deviations from the authors", from the
  runs' plans.
- :mod:`~explorer.evaluation.report`: the Markdown reproduction report with its figures.
- :mod:`~explorer.evaluation.cli`: ``python -m explorer evaluate`` and ``python -m explorer
  report``.

Usage and the results folder format: ``docs/evaluation.md``.
"""

__all__ = ["schema", "plan", "units", "folder", "backend", "runner", "summary", "claims",
           "deviations", "report", "cli"]
