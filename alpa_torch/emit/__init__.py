"""Stage 3, emit: a plan becomes this rank's local FX program (the same
ATen ops on local shards, with the collectives the planner costed).

- spec.py: ``Spec``, a parsed ShardingSpec; the mesh the emitted code needs.
- rewrite.py: the rewrite of each node (``Rewriter``); a whole-mesh plan's
  program (``build_local_program``).
- stage_program.py: one pipeline stage's program, by the same rewrite.
- local_ops.py: the building blocks programs call (``torch.ops.alpa.*``).
- experts.py: an experts layer's local computation.

Next: alpa_torch/runtime (the programs run on process groups).
"""
__all__ = ["spec", "rewrite", "stage_program", "local_ops", "experts"]
