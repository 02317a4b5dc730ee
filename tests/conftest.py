import os
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Two cores on CI: keep torch from oversubscribing them while pytest runs.
torch.set_num_threads(int(os.environ.get("EXPLORER_TEST_THREADS", "2")))
