"""alpa_torch: automatic inter- and intra-operator parallelism for PyTorch.

The Alpa planner (OSDI'22) rebuilt for PyTorch, with its core in C++.
Start with ``alpa_torch.capture(model, example_args)``.
"""
from alpa_torch.errors import (AlpaError, CaptureError, CollectiveError, PeerFailedError,
                               PlanInfeasibleError)
from alpa_torch.capture import CapturedGraph, LayerSummary, capture, load
from alpa_torch.cluster import Cluster
from alpa_torch.plan import CollectiveRecord, Plan, Stage
from alpa_torch.api import plan
from alpa_torch.inter_op import StageChoice, StageDPResult, stage_dp


def parallelize(*args, **kwargs):
    """See alpa_torch.parallel.parallelize (imported lazily: it pulls in
    torch.distributed.tensor)."""
    from alpa_torch.parallel import parallelize as _parallelize
    return _parallelize(*args, **kwargs)

__version__ = "0.1.0"

__all__ = [
    "AlpaError", "CaptureError", "CollectiveError", "PeerFailedError", "PlanInfeasibleError",
    "CapturedGraph", "LayerSummary", "capture", "load",
    "Cluster", "CollectiveRecord", "Plan", "Stage", "plan", "parallelize",
    "StageChoice", "StageDPResult", "stage_dp",
]
