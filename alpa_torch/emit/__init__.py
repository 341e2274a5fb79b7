"""Stage 3, emit: a plan becomes this rank's local FX program (the same
ATen ops on local shards, with the collectives the planner costed).

- spec.py: specs (``_C.ShardingSpec``, read by the C++ parser) and the mesh
  the emitted code needs.
- program.py: a stage's local program, decided in C++
  (``_C.build_local_program``), emitted as FX (``emit_stage``), the same
  way for a whole-mesh plan, each pipeline stage and the compile backend.
- local_ops.py: the building blocks programs call (``torch.ops.alpa.*``).
- experts.py: an experts layer's local computation.

Next: alpa_torch/runtime (the programs run on process groups).
"""
__all__ = ["spec", "program", "local_ops", "experts"]
