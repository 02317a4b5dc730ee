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
