"""Stage 1, capture: an ``nn.Module`` and an example batch become the
planner's graph (ATen ops with shapes, dtypes and FLOPs; ``_C.Graph``).

- capture.py: ``torch.export`` training IR → graph JSON → ``_C.Graph``
  (``CapturedGraph``; ``alpa_torch.capture`` and ``alpa_torch.load``).
- experts.py: transformers' experts modules kept as one op while exporting.

Next: alpa_torch/planning (the graph becomes a Plan).
"""
__all__ = ["capture", "experts"]
