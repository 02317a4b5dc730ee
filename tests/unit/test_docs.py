"""The docs show every metric's name and formula, generated from explorer.metrics."""

import subprocess
import sys
from pathlib import Path

from explorer.metrics import METRICS

ROOT = Path(__file__).resolve().parents[2]


def test_metrics_doc_is_up_to_date_and_lists_every_formula():
    check = subprocess.run([sys.executable, "scripts/gen_metrics_doc.py", "--check"], cwd=ROOT,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    text = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    for m in METRICS.values():
        assert m.name in text
        assert m.formula.replace("|", "\\|") in text


def test_nothing_in_the_repository_points_outside_it():
    """The repository carries its own specification (docs/spec.md): no file cites sections of an
    outside document, an issue number, or a path beside the repository."""
    import re

    patterns = [re.compile("SPEC " + "§"), re.compile(r"\bissue" + r" [0-9]"),
                re.compile(r"\.\./" + "shared")]
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    hits = []
    for name in files:
        path = ROOT / name
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # binary files (weights, images, npz)
        for n, line in enumerate(text.splitlines(), start=1):
            if any(p.search(line) for p in patterns):
                hits.append(f"{name}:{n}: {line.strip()[:100]}")
    assert not hits, "\n".join(hits)
