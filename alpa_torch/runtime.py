"""Loads the C++ runtime (libalpa_runtime.so), which registers the
autograd-aware collectives ``torch.ops.alpa.*`` on c10d process groups."""
from __future__ import annotations

import os
import threading

import torch

_lock = threading.Lock()
_loaded = False


def load_runtime() -> None:
    """Registers torch.ops.alpa.* once per process."""
    global _loaded
    with _lock:
        if _loaded:
            return
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib", "libalpa_runtime.so")
        if not os.path.exists(path):
            raise RuntimeError(
                f"alpa_torch's C++ runtime is missing ({path}); rebuild with "
                f"`pip install --no-build-isolation -e .` (or ./scripts/setup.sh)")
        torch.ops.load_library(path)
        _loaded = True
