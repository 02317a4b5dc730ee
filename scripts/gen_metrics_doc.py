"""Writes docs/metrics.md from explorer.metrics.METRICS (the one source of metric names and formulas).

Usage: python scripts/gen_metrics_doc.py [--check]   (--check: exit 1 if the file is out of date)
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from explorer.metrics import METRICS  # noqa: E402

OUT = ROOT / "docs" / "metrics.md"

HEADER = """# Metrics

The introduction and the table are generated from `explorer/metrics.py` by
`scripts/gen_metrics_doc.py` (do not edit them by hand); the sections after the table are written
by hand and kept by the script.

`a` is the attribution map of the original input, `b` the map of the perturbed input. A map is
`sum over channels of |attribution|`, rescaled to mean 1. Pixels are ranked by value, descending;
equal values by lower row-major index first. `S_k(m)` is the set of the k top-ranked pixels,
`N_w(P)` the union of the (2w+1)×(2w+1) squares around the pixels of `P` (clipped at the image
borders), and `D_k(m)` the greedy diverse top-k selection: walk the pixels in ranking order and
accept a pixel when it lies outside `N_w` of every pixel accepted so far, until k are accepted.
When the image runs out first, `D_k` has fewer than k pixels and the denominators stay k.

The LENS metrics are those of Kamath, Mittal, Deshpande and Balasubramanian, "Rethinking
Robustness of Model Attributions" (AAAI 2024). The direction names recall/precision follow the
authors' code labels; read the formula. w-LENS-Spearman and w-LENS-Kendall are this app's
definition (max-pooled maps); at w = 0 they equal plain Spearman and Kendall.

| key | name | formula | meaning | higher means |
|---|---|---|---|---|
"""


# The hand-written sections start at this line; the script keeps them as they are.
MARKER = "<!-- hand-written below: scripts/gen_metrics_doc.py keeps everything from here -->"


def render() -> str:
    rows = []
    for m in METRICS.values():
        better = "more robust" if m.higher_is_better else "less robust"
        formula = m.formula.replace("|", "\\|")
        rows.append(f"| `{m.key}` | {m.name} | {formula} | {m.description} | {better} |")
    text = HEADER + "\n".join(rows) + "\n"
    old = OUT.read_text(encoding="utf-8") if OUT.exists() else ""
    if MARKER in old:
        text += "\n" + old[old.index(MARKER):]
    return text


def main() -> int:
    text = render()
    if "--check" in sys.argv:
        if not OUT.exists() or OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT} is out of date: run python scripts/gen_metrics_doc.py")
            return 1
        return 0
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
