"""Command line: ``python -m explorer SUBCOMMAND ...``.

Subcommands register themselves in ``SUBCOMMANDS``: each entry maps a name to
``(help, add_arguments(parser), run(args) -> exit code)``. A module that adds a subcommand
(e.g. ``evaluate``, ``report``) appends one entry here; nothing else changes.
"""

from __future__ import annotations

import argparse
import sys


def _add_train(p):
    from . import train

    train.add_arguments(p)


def _run_train(args) -> int:
    from . import train

    return train.main(args)


def _add_data(p):
    sub = p.add_subparsers(dest="data_command", required=True, metavar="{import,status,build-samples}")
    imp = sub.add_parser("import", help="copy local dataset files into the data root")
    imp.add_argument("dataset", help="dataset key (mnist, fashion_mnist, gtsrb, flowers102, imagenet)")
    imp.add_argument("dir", help="folder holding the files (IDX files, .gz or plain, or an image folder)")
    imp.add_argument("--data-root", default=None, help="destination root (default $EXPLORER_DATA or data/)")
    imp.add_argument("--unverified", action="store_true",
                     help="MNIST-style sets only: import well-formed IDX files that are not the "
                          "published ones (checksums differ), e.g. a subset")
    st = sub.add_parser("status", help="which datasets are present")
    st.add_argument("--data-root", default=None)
    bs = sub.add_parser("build-samples", help="rewrite the bundled samples in assets/ (needs MNIST and Fashion-MNIST)")
    bs.add_argument("--data-root", default=None)


def _run_data(args) -> int:
    try:
        return _run_data_command(args)
    except BrokenPipeError:
        raise
    except OSError as exc:  # a data root that cannot be read or written
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}; check the path and its permissions "
              f"(--data-root or EXPLORER_DATA)", file=sys.stderr)
        return 2


def _run_data_command(args) -> int:
    from . import data, data_import  # torch and PIL: loaded only by the data subcommand

    if args.data_command == "import":
        report = data_import.import_with_report(args.dataset, args.dir, root=args.data_root,
                                                verify=not args.unverified)
        print(report.text())
        return 0
    if args.data_command == "build-samples":
        for path in data.build_bundled_samples(root=args.data_root):
            print(f"wrote {path}")
        return 0
    for key, info in data.DATASETS.items():
        print(f"{key:14s} {data.dataset_status(key, root=args.data_root)}")
    return 0


def _add_evaluate(p):
    from .evaluation import cli

    cli.add_arguments(p)


def _run_evaluate(args) -> int:
    from .evaluation import cli

    return cli.main(args)


def _add_report(p):
    from .evaluation import cli

    cli.add_report_arguments(p)


def _run_report(args) -> int:
    from .evaluation import cli

    return cli.report_main(args)


def _add_lesson(p):
    from .lessons import cli

    cli.add_arguments(p)


def _run_lesson(args) -> int:
    from .lessons import cli

    return cli.main(args)


def _add_study(p):
    from .study import cli

    cli.add_arguments(p)


def _run_study(args) -> int:
    from .study import cli

    return cli.main(args)


SUBCOMMANDS: dict[str, tuple[str, object, object]] = {
    "train": ("train a shipped model (natural or PGD) and write its weights and card", _add_train, _run_train),
    "data": ("dataset files: import local copies, show status", _add_data, _run_data),
    "evaluate": ("attack many images and record every metric (resumable; torchrun shards it)",
                 _add_evaluate, _run_evaluate),
    "report": ("Markdown report with tables, figures and the paper's claims from evaluate results",
               _add_report, _run_report),
    "lesson": ("teaching lessons: precompute their attack results, check them, print a handout",
               _add_lesson, _run_lesson),
    "study": ("human-perception studies: create from TOML, simulate, analyse, export",
              _add_study, _run_study),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m explorer", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, add_arguments, run) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(p)
        p.set_defaults(_run=run)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except (ValueError, RuntimeError) as exc:  # user errors and unavailable data/models
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
