import os
import sys
from pathlib import Path

# Threads that wait passively: the app server, chromium and pytest share the CI machine's cores,
# and torch's default spinning OpenMP barriers waste most of a shared CPU.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from explorer import device  # noqa: E402  (after the path above)

# Two cores on CI: keep torch from oversubscribing them while pytest runs.
torch.set_num_threads(int(os.environ.get("EXPLORER_TEST_THREADS", "2")))


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` are skipped, saying why, where no CUDA GPU is usable."""
    if device.cuda_available():
        return
    why = ("the CPU is forced (EXPLORER_FORCE_CPU is set)" if device.forced_cpu()
           else "torch.cuda.is_available() is False on this machine")
    skip = pytest.mark.skip(reason=f"needs a CUDA GPU: {why}; run `make gpu-check` on a GPU "
                                   "machine")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)
