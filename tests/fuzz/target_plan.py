"""Fuzz target (b): ``Plan.load`` (``Plan.from_json``), ``explain`` and the
pictures of ``alpa-torch draw``.

Input: a plan file's JSON (seeds: real SPMD and pipeshard plans). A plan
that loads must round-trip (to_json -> from_json is identical), and every
reader of it must either work or raise a documented exception: the C++
explanation, the CLI's stage table, the SVG and HTML drawings, the
properties of Plan and Stage. A plan that loads must also make sense
against its own cluster (the invariants below): Plan.load is the place that
rejects one that does not.
"""
from __future__ import annotations

import re

from common import Finding, allowed, decode_json, same_json

import alpa_torch
from alpa_torch import cli, viz


def _readers(plan) -> None:
    plan.explain()
    cli.explain_text(plan)
    viz.plan_svg(plan)
    viz.plan_html(plan, "explanation")
    repr(plan)
    plan.collectives()
    for stage in plan.stages:
        repr(stage)
        stage.param_specs, stage.input_specs, stage.node_specs, stage.layers, stage.submesh
        stage.inputs, stage.outputs, stage.graph_outputs
    plan.predicted_step_time, plan.memory_per_device, plan.notes, plan.warnings
    if len(plan.stages) == 1:
        plan.param_specs


_SPEC = re.compile(r"(R|S0|S1|S01)*(P0|P1|P01)?")


def _spec_dims(spec: str, where: str) -> int:
    if not isinstance(spec, str) or not _SPEC.fullmatch(spec):
        raise Finding(f"plan loads with spec {spec!r} at {where}: not a spec of a 2-D mesh")
    return len(re.findall(r"R|S0?1?", spec.split("P")[0]))


def _invariants(plan) -> None:
    """What any plan Plan.load accepts must satisfy (DESIGN §4)."""
    doc = plan._doc
    cluster = doc["cluster"]
    devices = cluster["num_hosts"] * cluster["devices_per_host"]
    if plan.num_micro_batches < 1 or plan.schedule not in ("1f1b", "gpipe"):
        raise Finding(f"plan loads with {plan.num_micro_batches} microbatches, schedule "
                      f"{plan.schedule!r}")
    seen, next_layer = set(), 0
    for n, stage in enumerate(plan.stages):
        if stage.index != n:
            raise Finding(f"plan loads with stage {n} indexed {stage.index}")
        n0, n1 = stage.mesh_shape
        ids = stage.device_ids
        if n0 < 1 or n1 < 1 or len(ids) != n0 * n1:
            raise Finding(f"stage {n}: mesh {stage.mesh_shape} over device ids {ids}")
        for d in ids:
            if not 0 <= d < devices or d in seen:
                raise Finding(f"stage {n}: device id {d} (repeated, or outside the cluster's "
                              f"{devices} devices)")
            seen.add(d)
        first, last = stage.layers
        if len(plan.stages) > 1 and (first != next_layer or last < first or
                                     last >= max(plan.num_layers, 1)):
            raise Finding(f"stage {n}: layers {first}..{last} after layer {next_layer - 1} "
                          f"of {plan.num_layers}")
        next_layer = last + 1
        for name, spec in list(stage.param_specs.items()) + list(stage.input_specs.items()):
            _spec_dims(spec, f"stage {n} {name}")
        for value in stage.inputs + stage.outputs:
            dims = _spec_dims(value.get("spec"), f"stage {n} value {value.get('name')}")
            meta = re.fullmatch(r"[a-z0-9]+\[([\d, ]*)\]", value.get("meta", ""))
            if meta and dims != len([d for d in meta.group(1).split(",") if d.strip()]):
                raise Finding(f"stage {n} value {value.get('name')}: spec {value['spec']} for "
                              f"{value['meta']}")


def one_input(data: bytes) -> None:
    text, _ = decode_json(data)
    if text is None:
        return
    ok, plan = allowed(alpa_torch.Plan.from_json, text)
    if not ok:
        return
    again = alpa_torch.Plan.from_json(plan.to_json())
    same_json(plan.to_json(), again.to_json(), "plan: load -> to_json -> load")
    _invariants(plan)
    allowed(_readers, plan)
