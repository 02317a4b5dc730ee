"""``python -m explorer lesson {precompute,check,handout} LESSON.toml``."""

from __future__ import annotations

import sys
from pathlib import Path

from .handout import write_handout
from .results import check_results, precompute
from .spec import LessonError, load_lesson

__all__ = ["add_arguments", "main"]


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="lesson_command", required=True,
                           metavar="{precompute,check,handout}")
    pre = sub.add_parser("precompute", help="attack every state of a lesson and store the results")
    chk = sub.add_parser("check", help="fail when the stored results are stale")
    hand = sub.add_parser("handout", help="write a printable PDF handout")
    for q in (pre, chk, hand):
        q.add_argument("lesson", help="lesson TOML file (shipped ones: assets/lessons/*.toml)")
        q.add_argument("--results", default=None,
                       help="folder of the results files (default: assets/lessons/)")
    hand.add_argument("--out", default=None, help="PDF path (default: LESSON-ID-handout.pdf)")


def main(args) -> int:
    try:
        lesson = load_lesson(args.lesson)
        if args.lesson_command == "precompute":
            def progress(i, n, state):
                print(f"[{i}/{n}] {state.dataset} {state.model} {state.method} {state.attack} "
                      f"image {state.image}", file=sys.stderr, flush=True)
            npz, meta = precompute(lesson, args.results, progress)
            print(f"wrote {npz} and {meta} ({len(lesson.variants())} attack results)")
            return 0
        if args.lesson_command == "check":
            problems = check_results(lesson, args.results)
            for p in problems:
                print(f"stale: {p}", file=sys.stderr)
            if problems:
                print(f"run: python -m explorer lesson precompute {args.lesson}", file=sys.stderr)
                return 1
            print(f"{lesson.id}: precomputed results are up to date")
            return 0
        out = Path(args.out or f"{lesson.id}-handout.pdf")
        write_handout(lesson, out, args.results)
        print(f"wrote {out}")
        return 0
    except LessonError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot write: {exc.strerror} ({exc.filename})", file=sys.stderr)
        return 2
