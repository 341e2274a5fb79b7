"""Stage 4, runtime: the local programs run across the ranks of a job.

- parallel.py: ``alpa_torch.parallelize``: options agreed, then one path:
- spmd.py: a whole-mesh plan, one program per rank (``ProgramRunner``);
- pipeshard.py: a pipeline plan, each rank its stage's program, under the
  C++ ``PipelineExecutor``.
- agreement.py: what every rank must agree on (options, graph, plan).
- parameters.py: parameters and buffers as planned DTensors, and back whole.
- program_io.py: a program's inputs bound and outputs gathered.
- local_params.py: one plain local leaf per DTensor parameter.
- mesh.py: ``MeshGroups``, the process groups of a logical mesh.
- health.py: heartbeats, and errors that name the rank that failed.

The doors (alpa_torch/backend.py, cli.py, viz.py, checkpoint.py) use these.
"""
__all__ = ["parallel", "spmd", "pipeshard", "agreement", "parameters", "program_io",
           "local_params", "mesh", "health"]
