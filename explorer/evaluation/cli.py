"""Command lines ``python -m explorer evaluate ...`` and ``python -m explorer report ...``
(registered in ``explorer/__main__.py``)."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import torch

from ..attributions import METHODS
from ..surrogate import DEFAULT_BETA
from . import report
from . import roots as results_roots
from .backend import RegistryBackend
from .folder import export_compact
from .plan import PAPER, SOURCES, EvalConfig, parse_method_params, parse_number
from .runner import run

__all__ = ["add_arguments", "config_from_args", "main", "add_report_arguments", "report_main"]


# --------------------------------------------------------------------------------------------
# python -m explorer evaluate
# --------------------------------------------------------------------------------------------

def add_arguments(p) -> None:
    """Arguments of the ``evaluate`` subcommand."""
    p.add_argument("--datasets", nargs="+", required=True, metavar="DATASET",
                   help="dataset keys, e.g. mnist fashion_mnist")
    p.add_argument("--models", nargs="+", default=["natural", "pgd"], metavar="MODEL",
                   help="model names of each dataset (default: natural pgd)")
    p.add_argument("--methods", nargs="+", default=["saliency"], metavar="METHOD",
                   help=f"attribution methods ({', '.join(METHODS)}; default saliency)")
    p.add_argument("--attacks", nargs="+", default=["random_sign", "topk", "mass_center"],
                   metavar="ATTACK", help="attacks (default: random_sign topk mass_center)")
    p.add_argument("--eps", nargs="+", default=[PAPER], metavar="EPS",
                   help="ℓ∞ budgets in [0, 1] pixel units (0.3, 8/255) or 'paper' (default)")
    p.add_argument("--k", nargs="+", default=[PAPER], metavar="K",
                   help="evaluation k values (pixels) or 'paper' (default)")
    p.add_argument("--w", nargs="+", type=int, default=[0, 1, 2, 3], metavar="W",
                   help="LENS radii (default 0 1 2 3)")
    p.add_argument("--n-images", type=int, default=100, help="images per dataset (default 100)")
    p.add_argument("--source", choices=SOURCES, default="test",
                   help="test set (default) or the bundled sample images")
    p.add_argument("--image-offset", type=int, default=0,
                   help="first image position in the source (default 0)")
    p.add_argument("--batch-size", type=int, default=50,
                   help="images attacked together (default 50); part of the configuration")
    p.add_argument("--seed", type=int, default=0, help="seed of the random attacks (default 0)")
    p.add_argument("--steps", type=int, default=None, help="attack steps P (default: paper)")
    p.add_argument("--step-size", default=None, help="attack step α (default: paper)")
    p.add_argument("--attack-k", type=int, default=None, help="attack k' (default: paper)")
    p.add_argument("--select-k", type=int, default=None,
                   help="k at which the selection measure picks the chosen x' (default: the "
                        "first reported k, so x' is never weaker than noise at the judged k)")
    p.add_argument("--attack-w", type=int, default=None,
                   help="w of the lens_topk loss and LENS selection measures (default: paper)")
    p.add_argument("--beta", type=float, nargs="+", default=[DEFAULT_BETA], metavar="BETA",
                   help=f"softplus β of the attack surrogate (default {DEFAULT_BETA:g}); several "
                        "values are cycled over the restarts (e.g. 1 10 30)")
    p.add_argument("--restarts", type=int, default=3,
                   help="runs of each attack, the worst case kept (default 3, as the authors)")
    p.add_argument("--all-images", action="store_true",
                   help="attack every image (default: only correctly classified ones; the others "
                        "get a row with attacked=False and no scores)")
    p.add_argument("--chance-mc", action="store_true",
                   help="also record the Monte-Carlo permutation chance levels (diverse "
                        "variants, LENS correlations at w >= 1, centre shift; ~45 ms per 28x28 "
                        "pair and (k, w)); by default only the exact ones")
    p.add_argument("--measure", default="topk_intersection",
                   help="metric that picks the best candidate (default topk_intersection; the "
                        "authors used kendall)")
    p.add_argument("--method-param", action="append", default=[], metavar="METHOD.NAME=VALUE",
                   help="parameter of a method for the reported maps, e.g. "
                        "integrated_gradients.steps=100 (repeatable)")
    p.add_argument("--attack-method-param", action="append", default=[],
                   metavar="METHOD.NAME=VALUE",
                   help="override inside the attack loop only, e.g. "
                        "integrated_gradients.steps=20 (repeatable)")
    p.add_argument("--out", required=True, help="results folder (created, or resumed)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads of each process (default: torch's choice; torchrun "
                        "sets 1 per process)")
    p.add_argument("--data-root", default=None, help="dataset root (default $EXPLORER_DATA or "
                                                     "data/)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _numbers_or_paper(values, what, conv):
    out = []
    for v in values:
        if v == PAPER:
            out.append(PAPER)
            continue
        try:
            out.append(conv(v))
        except ValueError:
            raise ValueError(f"{what} values must be numbers (0.3, 8/255) or 'paper'; "
                             f"got {v!r}") from None
    return tuple(out)


def config_from_args(args) -> EvalConfig:
    """The :class:`EvalConfig` of parsed ``evaluate`` arguments."""
    return EvalConfig(
        datasets=tuple(args.datasets), models=tuple(args.models), methods=tuple(args.methods),
        attacks=tuple(args.attacks), eps=_numbers_or_paper(args.eps, "--eps", parse_number),
        k=_numbers_or_paper(args.k, "--k", int), w=tuple(args.w), n_images=args.n_images,
        source=args.source, image_offset=args.image_offset, batch_size=args.batch_size,
        seed=args.seed, steps=args.steps,
        step_size=None if args.step_size is None else parse_number(args.step_size),
        attack_k=args.attack_k, attack_w=args.attack_w, select_k=args.select_k,
        beta=args.beta[0] if len(args.beta) == 1 else tuple(args.beta), measure=args.measure,
        restarts=args.restarts, all_images=args.all_images, chance_mc=args.chance_mc,
        method_params=parse_method_params(args.method_param),
        attack_method_params=parse_method_params(args.attack_method_param))


def main(args) -> int:
    """Entry point of ``python -m explorer evaluate``."""
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1; got {args.threads}")
        torch.set_num_threads(args.threads)
    config = config_from_args(args)
    launcher = "python"
    if os.environ.get("TORCHELASTIC_RUN_ID"):
        launcher = f"torchrun --nproc_per_node={os.environ.get('LOCAL_WORLD_SIZE', '?')}"
    argv = sys.argv[1:] if sys.argv and sys.argv[0].endswith(("__main__.py", "explorer")) else []
    command = f"{launcher} -m explorer " + " ".join(shlex.quote(a) for a in argv) if argv else ""
    try:
        run(config, args.out, backend=RegistryBackend(args.data_root), device=args.device,
            progress=not args.no_progress, command=command)
    except KeyboardInterrupt:
        print(f"\ninterrupted: the finished batches are kept in {args.out}; run the same command "
              "again to resume", file=sys.stderr)
        return 130
    return 0


# --------------------------------------------------------------------------------------------
# python -m explorer report
# --------------------------------------------------------------------------------------------

def add_report_arguments(p) -> None:
    """Arguments of the ``report`` subcommand."""
    p.add_argument("results", nargs="+", help="results folder(s) of `python -m explorer evaluate`")
    p.add_argument("--out", required=True, help="output folder (Markdown + figures/)")
    p.add_argument("--filename", default="report.md", help="Markdown file name (default "
                                                           "report.md)")
    p.add_argument("--notes", default=None,
                   help="a Markdown file inserted after the definitions (discussion)")
    p.add_argument("--title", default="Reproduction report")
    p.add_argument("--figure-prefix", default="", help="prefix of the figure file names")
    p.add_argument("--copy-rows-to", default=None, metavar="DIR",
                   help="also copy each results folder to DIR/NAME as config.json, runs.jsonl "
                        "and results.csv.gz (compact, readable by the Sweeps page)")


def report_main(args) -> int:
    """Entry point of ``python -m explorer report``."""
    import matplotlib  # heavy, and only the report draws: the backend is chosen before pyplot

    matplotlib.use("Agg")
    try:
        path = report.build_report(args.results, args.out, args.filename, args.notes,
                                   args.title, args.figure_prefix)
        print(f"wrote {path}")
        if args.copy_rows_to:
            for folder in args.results:
                dest = export_compact(folder, Path(args.copy_rows_to) / Path(folder).name)
                print(f"copied the rows of {folder} to {dest}")
            listed = results_roots.write_reported(
                Path(args.copy_rows_to), [Path(f).name for f in args.results],
                os.path.relpath(path, args.copy_rows_to))
            print(f"recorded the report's folders in {listed}")
    except OSError as exc:  # an output folder that cannot be created or written
        where = exc.filename or args.out
        print(f"error: cannot write {where}: {exc.strerror or exc}; choose a writable --out "
              "(or --copy-rows-to) folder", file=sys.stderr)
        return 2
    return 0
