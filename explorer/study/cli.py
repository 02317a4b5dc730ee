"""``python -m explorer study {create,list,simulate,analyse,export}``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import simulate as _simulate, spec as _spec, storage

__all__ = ["add_arguments", "main"]


def _db(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", default=None, metavar="URL",
                   help="database URL (sqlite:///PATH or postgresql://USER@HOST/DB); default "
                        "$EXPLORER_STUDY_DB or studies.sqlite in $EXPLORER_STUDY_DIR (default: "
                        "the user's data directory)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="study_command", required=True,
                           metavar="{create,list,simulate,analyse,export}")
    c = sub.add_parser("create", help="freeze a study's stimuli from a TOML file; prints its id "
                                      "on the last line")
    c.add_argument("spec", help="study file (TOML), e.g. examples/study_mnist.toml")
    _db(c)
    ls = sub.add_parser("list", help="the studies in the database")
    _db(ls)
    s = sub.add_parser("simulate", help="simulated participants through the participant code path")
    s.add_argument("study", help="study id")
    s.add_argument("--participants", type=int, default=10)
    s.add_argument("--workers", type=int, default=4, help="participants answering at once (threads of this process)")
    s.add_argument("--rule", default="lens", choices=_simulate.RULES)
    s.add_argument("--noise", type=float, default=0.6, help="answer noise (rating points)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--pace", type=float, default=0.0,
                   help="seconds a simulated participant waits before each answer")
    s.add_argument("--log", default=None, metavar="PATH",
                   help="append every acknowledged response here (one JSON object a line)")
    _db(s)
    a = sub.add_parser("analyse", help="exclusions, agreement, metric-human agreement")
    a.add_argument("study", help="study id")
    a.add_argument("--bootstrap", type=int, default=1000, help="bootstrap replicates")
    _db(a)
    e = sub.add_parser("export", help="tidy CSVs: responses, participants, trials, metrics, "
                                      "per_trial, agreement")
    e.add_argument("study", help="study id")
    e.add_argument("--out", required=True, metavar="DIR")
    e.add_argument("--bootstrap", type=int, default=1000, help="bootstrap replicates")
    _db(e)


def main(args: argparse.Namespace) -> int:
    cmd = args.study_command
    if cmd == "create":
        from . import stimuli  # noqa: PLC0415 - torch and the models, only to freeze stimuli

        spec = _spec.load_spec(args.spec)
        store = storage.open_store(args.db)
        frozen = stimuli.freeze(spec, Path(args.spec).read_text(encoding="utf-8"),
                                progress=lambda msg: print(msg, file=sys.stderr, flush=True))
        store.save_study(frozen)
        print(f"created study {frozen.id!r}: {len(frozen.trials)} trials "
              f"({sum(t.kind == 'main' for t in frozen.trials)} main), {len(frozen.stimuli)} "
              f"stimuli, digest {frozen.digest[:16]}, in {store._safe_url()}")
        print("participant link: http://HOST:8501/study?study=" + frozen.id)
        print(frozen.id)
        return 0
    store = storage.open_store(args.db)
    if cmd == "list":
        for s in store.list_studies():
            print(f"{s['study_id']}  {s['task']:15s} {s['title']}")
        return 0
    if cmd == "simulate":
        results = _simulate.simulate(store, args.study, args.participants, args.workers,
                                     args.rule, noise=args.noise, seed=args.seed,
                                     pace=args.pace, log_path=args.log)
        n = sum(r.answered for r in results)
        print(f"{len(results)} simulated participant(s) ({args.rule}) finished; {n} response(s) "
              "stored in this run")
        return 0
    from . import analysis  # noqa: PLC0415 - scipy, krippendorff and torch (metric names)

    if cmd == "analyse":
        print(analysis.format_report(analysis.analyse(store, args.study,
                                                      n_bootstrap=args.bootstrap)))
        return 0
    if cmd == "export":
        for path in analysis.export(store, args.study, args.out, n_bootstrap=args.bootstrap):
            print(f"wrote {path}")
        return 0
    raise ValueError(f"unknown study command {cmd!r}")
