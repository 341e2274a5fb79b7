"""Stage 2, planning: a captured graph and a cluster become a Plan (the C++
planner: intra-op ILP, inter-op stage DP). Planning needs no processes.

- planner.py: ``alpa_torch.plan``: options checked, then ``_C.plan_intra_op``
  or ``_C.plan_pipeshard``.
- plan_types.py: ``Plan``, ``Stage``, ``CollectiveRecord`` over the plan's JSON.
- cluster.py: ``Cluster`` (hosts × devices, FLOP/s, memory, links).
- megatron.py: the Megatron layout, planned pinned and compared.
- ilp.py, inter_op.py: the intra-op ILP and the stage DP as plain data.

Next: alpa_torch/emit (the plan becomes per-rank programs).
"""
__all__ = ["planner", "plan_types", "cluster", "megatron", "ilp", "inter_op"]
