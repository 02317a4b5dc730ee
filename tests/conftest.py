import os
import sys
from pathlib import Path

# Threads that wait passively: the app server, chromium and pytest share the CI machine's cores,
# and torch's default spinning OpenMP barriers waste most of a shared CPU.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Two cores on CI: keep torch from oversubscribing them while pytest runs.
torch.set_num_threads(int(os.environ.get("EXPLORER_TEST_THREADS", "2")))
