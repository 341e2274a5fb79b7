"""alpa_torch: automatic inter- and intra-operator parallelism for PyTorch.

The Alpa planner (OSDI'22) rebuilt for PyTorch, with its core in C++.
Start with ``alpa_torch.capture(model, example_args)``.

The package follows the data (README "Tour"): graph/ (capture) →
planning/ (plan) → emit/ (per-rank programs) → runtime/ (run them);
the top-level modules are the doors: this API, backend.py
(``torch.compile(backend="alpa")``), cli.py (``alpa-torch``), viz.py
(plan pictures) and checkpoint.py (DCP).
"""
from alpa_torch.errors import (AlpaError, CaptureError, CollectiveError, PeerFailedError,
                               PlanInfeasibleError)
from alpa_torch.graph.capture import CapturedGraph, LayerSummary, capture, load
from alpa_torch.planning.cluster import Cluster
from alpa_torch.planning.plan_types import CollectiveRecord, Plan, Stage
from alpa_torch.planning.planner import plan
from alpa_torch.planning.inter_op import StageChoice, StageDPResult, stage_dp


def parallelize(*args, **kwargs):
    """See alpa_torch.runtime.parallel.parallelize (imported lazily: it
    pulls in torch.distributed.tensor)."""
    from alpa_torch.runtime.parallel import parallelize as parallelize_model
    return parallelize_model(*args, **kwargs)


__version__ = "0.1.0"

__all__ = [
    "AlpaError", "CaptureError", "CollectiveError", "PeerFailedError", "PlanInfeasibleError",
    "CapturedGraph", "LayerSummary", "capture", "load",
    "Cluster", "CollectiveRecord", "Plan", "Stage", "plan", "parallelize",
    "StageChoice", "StageDPResult", "stage_dp",
]
