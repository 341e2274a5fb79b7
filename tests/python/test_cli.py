"""The ``alpa-torch`` command line (alpa_torch/cli.py) and plan pictures
(alpa_torch/viz.py): plan from a factory and from a saved graph, explain,
draw rendered headless by rsvg-convert and checked in its pixels, progress
on stderr, and user errors (exit status 2, no traceback)."""
import io
import os
import re
import shutil
import struct
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
import zlib

import numpy as np
import pytest
import torch

import alpa_torch
from alpa_torch import cli, viz

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MLP_PARAMS = [f"blocks.{b}.{i}.{w}" for b in range(4) for i in (0, 2) for w in ("weight", "bias")]

pytestmark = pytest.mark.timeout(300)


def run_cli(capsys, *argv):
    """(exit status, stdout, stderr) of ``alpa-torch ARGV`` run in-process."""
    status = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def intra_plan_file(workdir):
    """A 1-stage plan of cli_models:mlp_factory on a 1x4 mesh, made by the CLI."""
    path = workdir / "intra.json"
    out, err = io.StringIO(), io.StringIO()
    assert cli.main(["plan", "cli_models:mlp_factory", "--mesh", "1x4", "-o", str(path)],
                    out, err) == 0, err.getvalue()
    assert "stage 0: logical mesh" in out.getvalue()
    assert f"wrote {path}" in err.getvalue()
    return path


@pytest.fixture(scope="module")
def pipe_plan_file(workdir):
    """A 2-stage pipeshard plan: blocks.0-1 on devices 0-1, blocks.2-3 on 2-3."""
    path = workdir / "pipe.json"
    out, err = io.StringIO(), io.StringIO()
    status = cli.main(["plan", "cli_models:mlp_factory", "--method", "pipeshard", "--mesh", "1x4",
                       "--stage-meshes", "1x2,1x2", "--layer-boundaries", "blocks.2",
                       "--micro-batches", "2", "-q", "-o", str(path)], out, err)
    assert status == 0, err.getvalue()
    return path


# ---- plan ------------------------------------------------------------------------

def test_plan_from_factory(intra_plan_file):
    plan = alpa_torch.Plan.load(intra_plan_file)
    assert len(plan.stages) == 1
    assert plan.stages[0].device_ids == [0, 1, 2, 3]
    assert sorted(plan.param_specs) == sorted(MLP_PARAMS)


def test_plan_from_saved_graph_equals_plan_from_factory(capsys, workdir, intra_plan_file):
    import cli_models
    model, args = cli_models.mlp_factory()
    graph_file = workdir / "mlp_graph.json"
    alpa_torch.capture(model, args).save(graph_file)
    status, out, err = run_cli(capsys, "plan", graph_file, "--mesh", "1x4", "-q",
                               "-o", workdir / "from_graph.json")
    assert status == 0, err
    assert alpa_torch.Plan.load(workdir / "from_graph.json") == alpa_torch.Plan.load(intra_plan_file)
    assert "stages at a glance" in out


def test_plan_from_factory_with_kwargs_json_to_stdout(capsys):
    status, out, err = run_cli(capsys, "plan", "cli_models:kwargs_factory", "--mesh", "2",
                               "--cluster", "a100-40gb", "-q", "-o", "-")
    assert status == 0, err
    plan = alpa_torch.Plan.from_json(out)
    assert sorted(plan.param_specs) == ["fc.bias", "fc.weight"]
    assert plan._doc["cluster"]["name"] == "a100-40gb" and plan.stages[0].device_ids == [0, 1]


def test_plan_pipeshard_stages(pipe_plan_file):
    plan = alpa_torch.Plan.load(pipe_plan_file)
    assert [s.device_ids for s in plan.stages] == [[0, 1], [2, 3]]
    assert sorted(plan.stages[0].param_specs) == sorted(MLP_PARAMS[:8])
    assert sorted(plan.stages[1].param_specs) == sorted(MLP_PARAMS[8:])
    assert plan.num_micro_batches == 2


def test_plan_remat_and_precision_flags(workdir):
    path = workdir / "remat.json"
    out, err = io.StringIO(), io.StringIO()
    status = cli.main(["plan", "cli_models:mlp_factory", "--method", "pipeshard", "--mesh", "1x4",
                       "--stage-meshes", "1x2,1x2", "--layer-boundaries", "blocks.2",
                       "--micro-batches", "2", "--remat", "all", "--precision", "bf16", "-q",
                       "-o", str(path)], out, err)
    assert status == 0, err.getvalue()
    plan = alpa_torch.Plan.load(path)
    assert [s.remat for s in plan.stages] == [True, True] and plan.precision == "bf16"
    err = io.StringIO()
    assert cli.main(["plan", "cli_models:mlp_factory", "--mesh", "1x4", "--remat", "all"],
                    io.StringIO(), err) == 2
    assert "--remat all only apply to --method pipeshard" in err.getvalue()


# ---- explain -----------------------------------------------------------------------

def test_explain_names_every_stage_and_spec(capsys, pipe_plan_file):
    status, out, err = run_cli(capsys, "explain", pipe_plan_file)
    assert status == 0, err
    plan = alpa_torch.Plan.load(pipe_plan_file)
    for s in plan.stages:
        assert f"stage {s.index}: logical mesh {s.mesh_shape} over devices {s.device_ids}" in out
        assert f"layers {s.layers[0]}..{s.layers[1]} on sub-mesh {s.submesh}" in out
        for name, spec in s.param_specs.items():
            assert re.search(rf"^\s+{re.escape(name)}\s+{spec}$", out, re.M), (name, out)
    assert re.search(r"^\s+0\s+0\.\.0\s+blocks\.0-1\s+1x2\s+\[0, 1\]\s+\(2, 1\)", out, re.M), out
    assert "stage 0 -> stage 1: linear_3 f32[8,32], spec RR -> RR, 1 KiB per microbatch" in out


def test_explain_single_stage_lists_collectives(capsys, intra_plan_file):
    status, out, _ = run_cli(capsys, "explain", intra_plan_file)
    plan = alpa_torch.Plan.load(intra_plan_file)
    assert status == 0
    assert f"collectives ({len(plan.collectives())}):" in out
    assert "values between stages" not in out   # one stage: nothing flows between stages


# ---- draw ---------------------------------------------------------------------------

def read_png(path):
    """RGB(A) pixels of an 8-bit non-interlaced PNG, as a uint8 [H, W, C] array."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
    width, height, depth, color, _, _, interlace = header
    assert depth == 8 and color in (2, 6) and interlace == 0, header
    channels = 4 if color == 6 else 3
    raw = zlib.decompress(idat)
    stride = width * channels
    rows = np.zeros((height, stride), dtype=np.int32)
    prev = np.zeros(stride, dtype=np.int32)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = np.frombuffer(raw, np.uint8, stride, y * (stride + 1) + 1).astype(np.int32)
        rows[y] = prev = _unfilter(kind, line, prev, channels)
    return rows.reshape(height, width, channels).astype(np.uint8)


def _unfilter(kind, line, prev, bpp):
    if kind == 0:
        return line
    if kind == 2:
        return (line + prev) & 0xFF
    if kind == 1:   # Sub: a running sum per channel
        return (np.cumsum(line.reshape(-1, bpp), axis=0) & 0xFF).reshape(-1)
    out = line.tolist()
    up = prev.tolist()
    for i in range(len(out)):
        left = out[i - bpp] if i >= bpp else 0
        if kind == 3:
            out[i] = (out[i] + (left + up[i]) // 2) & 0xFF
        else:       # Paeth
            ul = up[i - bpp] if i >= bpp else 0
            p = left + up[i] - ul
            pa, pb, pc = abs(p - left), abs(p - up[i]), abs(p - ul)
            pred = left if pa <= pb and pa <= pc else (up[i] if pb <= pc else ul)
            out[i] = (out[i] + pred) & 0xFF
    return np.array(out, dtype=np.int32)


def render(svg_path):
    exe = shutil.which("rsvg-convert")
    if exe is None:
        pytest.skip("rsvg-convert not found: install the Debian package librsvg2-bin "
                    "(scripts/setup.sh does) to render plan pictures headless")
    png = str(svg_path) + ".png"
    subprocess.run([exe, "-o", png, str(svg_path)], check=True, timeout=60)
    return read_png(png)


def color_pixels(pixels, color):
    """Mask of the pixels of exactly ``color`` (#rrggbb)."""
    rgb = [int(color[i:i + 2], 16) for i in (1, 3, 5)]
    return np.all(pixels[:, :, :3] == rgb, axis=2)


def stage_boxes(pixels, max_stages=10):
    """{stage: (pixel count, mean x)} of every stage color in the picture."""
    found = {}
    for i in range(max_stages):
        mask = color_pixels(pixels, viz.stage_color(i))
        if mask.sum() > 100:
            found[i] = (int(mask.sum()), float(np.nonzero(mask)[1].mean()))
    return found


def draw(capsys, plan_file, out_file):
    status, _, err = run_cli(capsys, "draw", plan_file, "-o", out_file)
    assert status == 0, err
    ET.parse(out_file)   # well-formed XML
    return open(out_file, encoding="utf-8").read()


def test_draw_two_stage_plan_one_box_per_stage(capsys, workdir, pipe_plan_file):
    svg = draw(capsys, pipe_plan_file, workdir / "pipe.svg")
    assert svg.count("data-stage=") == 2
    boxes = stage_boxes(render(workdir / "pipe.svg"))
    assert sorted(boxes) == [0, 1], boxes
    (n0, x0), (n1, x1) = boxes[0], boxes[1]
    assert x0 < x1, "stage 0 (devices 0-1) must be left of stage 1 (devices 2-3)"
    assert 0.8 < n0 / n1 < 1.25, boxes   # both cover two devices
    for name in ("blocks.0.0.weight", "blocks.3.2.bias", "layers 0..0", "blocks.2-3"):
        assert name in svg


def test_draw_one_stage_plan_shows_split_dims(capsys, workdir, pipe_plan_file):
    graph = workdir / "mlp_graph.json"
    if not graph.exists():
        alpa_torch.capture(*__import__("cli_models").mlp_factory()).save(graph)
    # pin one split so the picture must show a dim split on mesh axis 0
    plan = alpa_torch.plan(alpa_torch.load(graph), mesh_shape=(1, 4),
                           plan_overrides={"blocks.0.0.weight": "S0R"})
    plan.save(workdir / "split.json")
    draw(capsys, workdir / "split.json", workdir / "split.svg")
    pixels = render(workdir / "split.svg")
    boxes = stage_boxes(pixels)
    assert list(boxes) == [0], boxes
    draw(capsys, pipe_plan_file, workdir / "pipe_again.svg")
    two_device_box = stage_boxes(render(workdir / "pipe_again.svg"))[0][0]
    # four devices: about twice the area of a two-device box
    assert 1.7 < boxes[0][0] / two_device_box < 2.5, (boxes, two_device_box)
    segment = (viz._SEG_W - 4) * (viz._ROW_H - 4)   # one dim's bar, in px
    split = [s for s in plan.param_specs.values() if "S0" in s]
    axis0 = color_pixels(pixels, viz.AXIS_COLORS["0"]).sum()
    assert len(split) * segment * 0.6 < axis0 < (len(split) * segment + 200) * 1.1, (split, axis0)


def test_draw_html_embeds_svg_and_text(capsys, workdir, pipe_plan_file):
    html_text = draw(capsys, pipe_plan_file, workdir / "pipe.html")
    assert html_text.startswith("<!DOCTYPE html>") and html_text.count("<svg") == 1
    assert "values between stages:" in html_text
    status, _, err = run_cli(capsys, "draw", pipe_plan_file)   # default: next to the plan
    assert status == 0 and os.path.exists(workdir / "pipe.html"), err


def test_viz_helpers():
    assert viz.stage_modules(["transformer.wte.weight", "transformer.h.0.attn.w",
                              "transformer.h.1.mlp.b", "transformer.h.3.x", "lm_head.weight"]) \
        == ["transformer.wte", "transformer.h.0-1", "transformer.h.3", "lm_head"]
    assert viz.spec_dims("S01RP1") == (["S01", "R"], "1")
    assert viz.spec_dims("RS0x3") == (["R", "S0x3"], "")   # block layouts (GPT-2's c_attn)
    assert viz.spec_parts("RS0x3P1") == ([("", 1), ("0", 3)], "1")
    with pytest.raises(ValueError, match="cannot read sharding spec"):
        viz.spec_dims("SXR")
    assert len({viz.stage_color(i) for i in range(16)}) == 16
    assert viz.format_seconds(3.2e-5) == "32 µs" and viz.format_bytes(1536) == "1.5 KiB"
    assert cli.parse_mesh("2x4") == (2, 4) and cli.parse_mesh("4") == (1, 4)


# ---- progress ------------------------------------------------------------------------

def test_progress_bar_and_spinner_on_a_terminal():
    buf = io.StringIO()
    progress = cli.Progress(buf, tty=True).phase("planning")
    progress(3, 10)
    assert "[#########.....................] 3/10 candidate stages" in buf.getvalue()
    progress.finish()
    assert re.search(r"alpa-torch: planning \d+\.\d s \(3/10 candidate stages\)\n$",
                     buf.getvalue())
    buf = io.StringIO()
    spinner = cli.Progress(buf, tty=True).phase("capturing")
    time.sleep(0.35)
    spinner.finish(quiet=True)
    assert re.search(r"capturing [|/\\-] 0\.\d s", buf.getvalue()), buf.getvalue()


def test_plan_passes_progress_when_the_planner_takes_it(capsys, monkeypatch, workdir,
                                                        intra_plan_file):
    calls = []

    def fake_plan(module, *, progress, **options):
        progress(1, 2)
        progress(2, 2)
        calls.append(options)
        return alpa_torch.Plan.load(intra_plan_file)

    graph = workdir / "mlp_graph.json"
    if not graph.exists():
        alpa_torch.capture(*__import__("cli_models").mlp_factory()).save(graph)
    monkeypatch.setattr(alpa_torch, "plan", fake_plan)
    status, out, err = run_cli(capsys, "plan", graph, "--method", "pipeshard", "--mesh", "1x4",
                               "--micro-batches", "4")
    assert status == 0 and len(calls) == 1, err
    assert "planning" in err and "(2/2 candidate stages)" in err
    assert calls[0]["method"] == "pipeshard" and calls[0]["num_micro_batches"] == 4
    assert calls[0]["cluster"].num_devices == 4

    def old_plan(module, **options):   # no progress parameter: none is passed
        assert "progress" not in options
        return alpa_torch.Plan.load(intra_plan_file)

    monkeypatch.setattr(alpa_torch, "plan", old_plan)
    assert run_cli(capsys, "plan", graph, "--method", "pipeshard", "--mesh", "1x4")[0] == 0


# ---- errors ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bad_files(workdir):
    old = workdir / "old.json"
    old.write_text('{"format": "alpa_torch.plan", "version": 1}')
    broken = workdir / "broken.json"
    broken.write_text('{"format": "alpa_torch.plan", ')
    module = workdir / "broken_module.py"
    module.write_text("raise RuntimeError('cannot find the tokenizer')\n")
    graph = workdir / "tiny_graph.json"
    alpa_torch.capture(torch.nn.Linear(4, 4), (torch.randn(2, 4),)).save(graph)
    return {"old": old, "broken": broken, "module": module, "graph": graph}


ERROR_CASES = [
    (["plan", "no_such_pkg_xyz.models:build"],
     "cannot import module 'no_such_pkg_xyz.models'.*No module named 'no_such_pkg_xyz'.*PYTHONPATH"),
    (["plan", "cli_models:nope"], "module 'cli_models' has no attribute 'nope'.*mlp_factory"),
    (["plan", "cli_models:not_a_model"], "must return \\(model, example_args\\).*model is a "
     "builtins.str"),
    (["plan", "cli_models:not_a_tuple"], "must return .* it returned a torch.nn.*Linear"),
    (["plan", "cli_models:raises"], "factory 'cli_models:raises' raised RuntimeError: the "
     "weights file is missing at .*cli_models.py:\\d+"),
    (["plan", "just_words"], "neither a graph JSON file nor 'package.module:factory'"),
    (["plan", "{module}:build"], "importing module .*broken_module.py.* raised RuntimeError: "
     "cannot find the tokenizer"),
    (["plan", "cli_models:mlp_factory", "--mesh", "2x4", "--devices-per-host", "2"],
     "--mesh 2x4 has 8 devices but the cluster has 1 x 2 = 2"),
    (["plan", "cli_models:mlp_factory", "--mesh", "1x2", "--micro-batches", "4"],
     "only apply to --method pipeshard"),
    (["plan", "cli_models:mlp_factory", "--mesh", "1x4", "--memory-budget", "1KiB", "-q"],
     "cannot plan .*(least|memory)"),
    (["plan", "cli_models:mlp_factory", "--mesh", "oops"], "cannot read mesh 'oops'"),
    (["explain", "{old}"], "cannot read plan .*old.json.*format version 1.*re-plan"),
    (["explain", "{broken}"], "cannot read plan .*broken.json.*malformed JSON"),
    (["explain", "missing.json"], "no plan file 'missing.json'"),
    (["explain", "{graph}"], "is a captured graph: plan it with 'alpa-torch plan"),
    (["draw", "{old}", "-o", "x.svg"], "format version 1"),
]


@pytest.mark.parametrize("argv,message", ERROR_CASES,
                         ids=[f"{c[0][0]}-{i}" for i, c in enumerate(ERROR_CASES)])
def test_user_errors_exit_2_without_traceback(capsys, bad_files, argv, message):
    status, out, err = run_cli(capsys, *[a.format(**bad_files) for a in argv])
    assert status == 2, (out, err)
    assert err.startswith("alpa-torch: error:") or "\nalpa-torch: error:" in err, err
    assert "Traceback" not in err
    assert re.search(message, err, re.S), err


def test_draw_refuses_unknown_picture_format(capsys, workdir, pipe_plan_file):
    status, _, err = run_cli(capsys, "draw", pipe_plan_file, "-o", workdir / "plan.png")
    assert status == 2 and "name the output file *.svg or *.html" in err


def _subprocess_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([ROOT, HERE, env.get("PYTHONPATH", "")])
    return env


def test_python_dash_m_reports_user_error_with_status_2(bad_files):
    proc = subprocess.run([sys.executable, "-m", "alpa_torch", "explain", str(bad_files["old"])],
                          capture_output=True, text=True, timeout=120, env=_subprocess_env())
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("alpa-torch: error: cannot read plan") and \
        "Traceback" not in proc.stderr


def test_installed_console_script(pipe_plan_file):
    exe = shutil.which("alpa-torch") or shutil.which(
        "alpa-torch", path=os.path.dirname(sys.executable))
    if exe is None:
        pytest.skip("the alpa-torch console script is not installed "
                    "(pip install --no-build-isolation --no-deps -e . registers it)")
    proc = subprocess.run([exe, "explain", str(pipe_plan_file)], capture_output=True, text=True,
                          timeout=120, env=_subprocess_env())
    assert proc.returncode == 0, proc.stderr
    assert "stage 1: logical mesh (2, 1) over devices [2, 3]" in proc.stdout


# ---- plans that do not hold together (issue 11, defect 6) ------------------------------

def _edited(src, dst, *edits):
    """Writes ``src``'s plan JSON to ``dst`` with each (path, value) edit applied."""
    import json
    doc = json.loads(open(src, encoding="utf-8").read())
    for path, value in edits:
        node = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    with open(dst, "w", encoding="utf-8") as f:
        json.dump(doc, f)
    return dst


# The reproductions of defect 6: each loaded before; explain and draw then
# printed an IndexError, drew nonsense or grew without bound.
BROKEN_PLANS = {
    "index": ((("stages", 0, "index"), -5), "stages[0].index: -5"),
    "repeated_device": ((("stages", 0, "device_ids"), [0, 0]), "device 0 is listed twice"),
    "no_device": ((("stages", 0, "device_ids"), []), "holds 2 devices but device_ids lists 0"),
    "axis": ((("stages", 1, "param_specs", "blocks.2.0.weight"), "S7R"), "mesh axis 7"),
    "micro_batches": ((("num_micro_batches",), 0), "num_micro_batches: 0 is outside"),
    "hosts": ((("cluster", "num_hosts"), 10**9), "cluster.num_hosts: 1000000000 is outside"),
}


@pytest.mark.parametrize("command", ["explain", "draw"])
@pytest.mark.parametrize("case", sorted(BROKEN_PLANS))
def test_broken_plans_exit_2_with_one_line(capsys, workdir, pipe_plan_file, command, case):
    edit, phrase = BROKEN_PLANS[case]
    path = _edited(pipe_plan_file, workdir / f"broken_{case}.json", edit)
    argv = [command, path] + (["-o", workdir / f"broken_{case}.svg"] if command == "draw" else [])
    status, out, err = run_cli(capsys, *argv)
    assert status == 2, (out, err)
    assert err.startswith("alpa-torch: error: cannot read plan ") and err.count("\n") == 1, err
    assert "invalid plan: " in err and phrase in err and "Traceback" not in err, err
    assert not os.path.exists(workdir / f"broken_{case}.svg")


def test_draw_summarises_a_cluster_too_large_for_a_grid(capsys, workdir, intra_plan_file):
    for hosts, per_host in [(1024, 64), (65536, 16)]:
        path = _edited(intra_plan_file, workdir / f"huge_{hosts}.json",
                       (("cluster", "num_hosts"), hosts), (("cluster", "devices_per_host"), per_host))
        start = time.monotonic()
        svg = draw(capsys, path, workdir / f"huge_{hosts}.svg")
        assert time.monotonic() - start < 20
        assert len(svg) < 100_000, len(svg)
        assert "too many devices to draw one cell each" in svg
        assert f"devices: {hosts} host(s) × {per_host}" in svg
        assert "stage 0: devices 0-3 on host(s) 0" in svg and svg.count("data-stage=") == 1
    status, out, err = run_cli(capsys, "explain", path)
    assert status == 0 and f"{65536} × 16" in out, err


def test_draw_block_layouts(capsys, workdir, intra_plan_file):
    path = _edited(intra_plan_file, workdir / "blocks.json",
                   (("stages", 0, "param_specs", "blocks.0.0.weight"), "S0x2R"))
    svg = draw(capsys, path, workdir / "blocks.svg")
    assert "S0x2R" in svg and "dim 0: ÷4 ax 0 x2" in svg


def test_explain_and_draw_check_the_plan_against_a_graph(capsys, workdir, intra_plan_file,
                                                         bad_files):
    graph = workdir / "mlp_graph.json"
    if not graph.exists():
        alpa_torch.capture(*__import__("cli_models").mlp_factory()).save(graph)
    status, out, err = run_cli(capsys, "explain", intra_plan_file, "--graph", graph)
    assert status == 0 and "stages at a glance" in out, err
    for argv in (["explain", intra_plan_file], ["draw", intra_plan_file, "-o", workdir / "g.svg"]):
        status, _, err = run_cli(capsys, *argv, "--graph", bad_files["graph"])
        assert status == 2 and "does not fit graph" in err and "graph_fingerprint" in err, err
        assert err.count("\n") == 1 and "Traceback" not in err
    status, _, err = run_cli(capsys, "explain", intra_plan_file, "--graph", workdir / "nope.json")
    assert status == 2 and "no graph file" in err


def test_explain_prints_each_stage_local_program(capsys, workdir, intra_plan_file, pipe_plan_file):
    from alpa_torch import _C
    graph = workdir / "mlp_graph.json"
    if not graph.exists():
        alpa_torch.capture(*__import__("cli_models").mlp_factory()).save(graph)
    for plan_file in (intra_plan_file, pipe_plan_file):
        status, out, err = run_cli(capsys, "explain", plan_file, "--graph", graph, "--programs")
        assert status == 0, err
        plan = alpa_torch.Plan.load(plan_file)
        texts = out.split("\nlocal program of stage ")[1:]
        assert len(texts) == len(plan.stages)
        for stage, text in zip(plan.stages, texts):
            body = text.split(":\n", 1)[1]
            assert _C.LocalProgram.parse(body).stage == stage.index
            for fqn in stage.param_specs:
                assert f'"{fqn}"' in body
    status, _, err = run_cli(capsys, "explain", intra_plan_file, "--programs")
    assert status == 2 and "--programs needs --graph" in err


class _Skip(torch.nn.Module):
    """h = a(x) is read by c, two stages later: it travels through stage 1."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = (torch.nn.Linear(8, 8) for _ in range(3))

    def forward(self, x):
        h = self.a(x)
        return self.c(self.b(h)) + h


def test_explain_lists_transfers_between_neighbouring_stages_only(capsys, workdir):
    plan = alpa_torch.plan(_Skip(), (torch.randn(4, 8),), method="pipeshard",
                           cluster=alpa_torch.Cluster.preset("cpu-gloo", 1, 3),
                           stage_meshes=[(1, 1)] * 3, layer_boundaries=["b", "c"])
    plan.save(workdir / "skip.json")
    status, out, err = run_cli(capsys, "explain", workdir / "skip.json")
    assert status == 0, err
    transfers = re.findall(r"^  stage (\d) -> stage (\d): (\S+)", out, re.M)
    assert transfers and all(int(t) == int(s) + 1 for s, t, _ in transfers), out
    assert ("0", "1", "linear") in transfers and ("1", "2", "linear") in transfers, out


def _mutations(doc, rng, count):
    """``count`` copies of ``doc``, each with one member set to an odd value;
    members are drawn by kind (path with list indices as #), so the many
    node records do not crowd out the few plan-wide fields."""
    import copy
    import json
    kinds = {}

    def walk(node, path):
        items = node.items() if isinstance(node, dict) else enumerate(node) \
            if isinstance(node, list) else ()
        for key, child in items:
            kind = tuple("#" if isinstance(k, int) else k for k in path + (key,))
            kinds.setdefault(kind, []).append(path + (key,))
            walk(child, path + (key,))
    walk(doc, ())
    groups = [kinds[k] for k in sorted(kinds, key=str)]
    odd = [-5, -1, 0, 1, 2, 7, 2**31, 2**62, 10**9, 1e308, float("nan"), float("inf"), -0.5,
           "", "S7R", "RS0x3", "S0S0", "RP1", "f32[8,32]", "gpipe", [], [0, 0], [2, 2], {}, None,
           True]
    for _ in range(count):
        mutated = copy.deepcopy(doc)
        group = groups[rng.randrange(len(groups))]
        path = group[rng.randrange(len(group))]
        node = mutated
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = rng.choice(odd)
        yield json.dumps(mutated)


def test_explain_and_draw_never_fail_on_a_plan_that_loads(workdir, pipe_plan_file):
    """Random one-field edits of a plan: each is refused with ValueError, or
    explained and drawn without an exception."""
    import json
    import random
    doc = json.loads(open(pipe_plan_file, encoding="utf-8").read())
    loaded = 0
    for text in _mutations(doc, random.Random(11), 400):
        try:
            plan = alpa_torch.Plan.from_json(text)
        except ValueError:
            continue
        loaded += 1
        cli.explain_text(plan)
        viz.plan_html(plan, plan.explain())
    assert 20 < loaded < 400, loaded   # some edits are harmless (names, notes), most are not


def test_explain_and_draw_survive_odd_names(capsys, workdir, intra_plan_file):
    """Names a plan may carry: control characters (not allowed in XML) and a
    list index of thousands of digits (beyond int()'s default limit)."""
    import json
    doc = json.loads(open(intra_plan_file, encoding="utf-8").read())
    specs = doc["stages"][0]["param_specs"]
    odd = "blocks.\x01." + "9" * 5000 + ".weight"
    specs[odd] = specs.pop("blocks.0.0.weight")
    doc["graph"] = "mlp\x02"
    path = workdir / "odd.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    status, out, err = run_cli(capsys, "explain", path)
    assert status == 0 and "9" * 5000 in out, err
    svg = draw(capsys, path, workdir / "odd.svg")   # well-formed XML
    assert "\x01" not in svg and "\ufffd" in svg


# ---- every model the project ships, every spec the planner emits -----------------

def _gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=128, n_positions=32, n_embd=64, n_layer=2, n_head=4)
    return GPT2LMHeadModel(cfg), (torch.randint(0, 128, (4, 16)),)


def _bert():
    from transformers import BertConfig, BertForMaskedLM
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=128, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=128, max_position_embeddings=32)
    return BertForMaskedLM(cfg), (torch.randint(0, 128, (4, 16)),)


def _shipped_models():
    from examples import models
    return {"mlp": lambda: (models.mlp(), models.mlp_example_inputs()),
            "moe_block": lambda: (models.moe_block(), models.moe_example_inputs()),
            "wide_resnet": lambda: (models.wide_resnet(), models.wide_resnet_example_inputs()),
            "gpt2": _gpt2, "bert": _bert}


DRAW_CASES = [(m, mesh, "intra_op") for m in ("mlp", "moe_block", "wide_resnet", "gpt2", "bert")
              for mesh in ((1, 4), (2, 2))] + [("gpt2", (1, 4), "pipeshard")]


@pytest.mark.parametrize("name,mesh,method", DRAW_CASES,
                         ids=[f"{n}-{m[0]}x{m[1]}-{k}" for n, m, k in DRAW_CASES])
def test_explain_and_draw_every_shipped_model(capsys, tmp_path, name, mesh, method):
    """explain and draw accept every spec the planner emits (block layouts
    such as RS0x3 included: Alpa's cost mode splits every matmul, GPT-2's
    fused q/k/v too), and the picture renders."""
    model, args = _shipped_models()[name]()
    extra = {"num_micro_batches": 2, "num_layers": 2} if method == "pipeshard" else {}
    plan = alpa_torch.plan(model, args, mesh_shape=mesh, cost_mode="alpa", method=method, **extra)
    path = tmp_path / "plan.json"
    plan.save(path)
    status, out, err = run_cli(capsys, "explain", path)
    assert status == 0, err
    for stage in plan.stages:
        for fqn, spec in stage.param_specs.items():
            assert spec in out
    svg = tmp_path / "plan.svg"
    text = draw(capsys, path, svg)
    for stage in plan.stages:
        for spec in set(stage.param_specs.values()):
            assert f">{spec}<" in text or spec == "", spec
    pixels = render(svg)
    assert stage_boxes(pixels).keys() == set(range(len(plan.stages)))
