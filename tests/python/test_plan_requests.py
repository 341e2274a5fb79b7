"""The planners' typed entry points: _C.IntraOpRequest / _C.PipeshardRequest
(keyword-only classes over the C++ option structs), _C.CostMode, and the
errors a wrong option gives."""
import json
import math

import pytest
import torch

import alpa_torch
from alpa_torch import _C

from examples.models import FeedForward as MLP


def test_options_defaults_are_the_cpp_defaults():
    options = _C.IntraOpOptions()
    assert options.memory_budget == math.inf
    assert options.cost_mode == _C.CostMode.seconds
    assert options.optimizer_state_factor == 2.0
    assert options.time_limit_s == 60.0 and options.num_threads == 1
    assert options.pinned == {}
    request = _C.PipeshardRequest()
    assert request.num_micro_batches == 1 and request.schedule == "1f1b"
    assert request.clustering.num_layers == 0 and request.clustering.eps == 0.5
    assert request.max_num_stages is None and request.stage_meshes == []


def test_nested_fields_are_written_in_place():
    request = _C.PipeshardRequest(stage_meshes=[(1, 2), (1, 2)], num_micro_batches=4)
    request.options.memory_budget = 2.0**30
    request.clustering.num_layers = 2
    assert request.options.memory_budget == 2.0**30
    assert request.clustering.num_layers == 2
    assert [tuple(m) for m in request.stage_meshes] == [(1, 2), (1, 2)]


def test_pinned_holds_specs_and_strategies_in_one_dict():
    pins = {"fc1.weight": "S0R", "linear": "RS0 = RR x S0R x S0"}
    options = _C.IntraOpOptions(pinned=pins)
    assert options.pinned == pins
    options.pinned = {"fc2.weight": "RS0"}
    assert options.pinned == {"fc2.weight": "RS0"}


def test_a_bad_pinned_spec_names_the_entry():
    with pytest.raises(ValueError, match=r"plan_overrides\['fc1.weight'\].*bad sharding spec 'Q9'"):
        _C.IntraOpOptions(pinned={"fc1.weight": "Q9"})


def test_options_are_keyword_only_and_typed():
    with pytest.raises(TypeError):
        _C.IntraOpOptions(1e9)  # positional: refused
    with pytest.raises(TypeError):
        _C.IntraOpOptions(cost_mode="alpa")  # a string, not _C.CostMode
    with pytest.raises(TypeError):
        _C.IntraOpRequest(mesh_shape=(1, 2, 3))


def test_request_plans_what_plan_plans():
    model = MLP(64)
    args = (torch.randn(8, 64),)
    via_api = alpa_torch.plan(model, args, mesh_shape=(1, 2), cost_mode="alpa")
    graph = alpa_torch.capture(model, args)
    request = _C.IntraOpRequest(mesh_shape=(1, 2),
                                options=_C.IntraOpOptions(cost_mode=_C.CostMode.alpa,
                                                          memory_budget=math.inf))
    cluster = _C.cluster_preset("cpu-gloo", 1, 2)
    direct = _C.plan_intra_op(graph.graph, cluster, request)
    assert json.loads(direct["plan_json"])["stages"] == json.loads(via_api.to_json())["stages"]
    assert direct["solver"]["status"] == "optimal"


def test_axis_links_need_cost_mode_alpa():
    model = MLP(64)
    args = (torch.randn(8, 64),)
    with pytest.raises(ValueError, match="apply to cost mode 'alpa'.*describe the links in the cluster"):
        alpa_torch.plan(model, args, mesh_shape=(1, 2), mesh_alpha=(1.0, 1.0))
    with pytest.raises(ValueError, match="one value per mesh axis"):
        alpa_torch.plan(model, args, mesh_shape=(1, 2), cost_mode="alpa", mesh_alpha=(1.0,))
    plan = alpa_torch.plan(model, args, mesh_shape=(1, 2), cost_mode="alpa",
                           mesh_alpha=(1.0, 1.0), mesh_beta=(0.01, 0.01))
    assert plan.stages


def test_unknown_cost_mode_is_named():
    with pytest.raises(ValueError, match="cost_mode must be 'seconds'.*or 'alpa'.*got 'fast'"):
        alpa_torch.plan(MLP(64), (torch.randn(8, 64),), mesh_shape=(1, 2), cost_mode="fast")


def test_collective_roles_are_an_enum():
    plan = alpa_torch.plan(MLP(64), (torch.randn(8, 64),), mesh_shape=(1, 2), cost_mode="alpa")
    roles = {c.role for c in plan.collectives()}
    assert roles and all(isinstance(r, _C.CollectiveRole) for r in roles)
    assert _C.CollectiveRole.partial_output in roles  # the row-parallel fc2's all-reduce
    assert set(_C.CollectiveRole.__members__) == {
        "reshard", "partial_output", "input_grad", "parameter_grad", "synced_statistics",
        "synced_statistic_grads", "token_dispatch", "token_combine"}
