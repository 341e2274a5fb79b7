"""Plan pictures: the stages laid over the device grid, and each stage's
shardings, as a standalone SVG or an HTML page that embeds it.

The picture has two parts:

1. the cluster as a grid (one row per host, one cell per device), with
   each stage a colored box over the devices it runs on, labelled with its
   index, layers, modules and logical mesh; a cluster too large for that
   (``grid_fits``) gets one line per stage naming its devices instead;
2. per stage, a band with its numbers (sub-mesh, devices, logical mesh,
   predicted time, memory, collectives) and one row per parameter and per
   stage input: its spec string and a bar with one segment per tensor dim,
   colored by the mesh axes that split the dim (gray: replicated).

Everything is plain string generation (no drawing library), so the output
is deterministic: the same plan gives the same bytes. Stage colors
(``stage_color``) appear only in the grid boxes, so a rasterized picture
can be checked by counting them.
"""
from __future__ import annotations

import colorsys
import html
import re
from typing import Dict, List, Sequence, Tuple

from alpa_torch import _C
from alpa_torch.graph.capture import layer_of
from alpa_torch.planning.plan_types import Plan, Stage

__all__ = ["AXIS_COLORS", "REPLICATED_COLOR", "stage_color", "format_seconds", "format_bytes",
           "stage_modules", "spec_parts", "spec_dims", "grid_fits", "plan_svg", "plan_html",
           "save_drawing"]

# Ten well-separated mid-tone colors; stages beyond them get golden-angle hues.
_PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2",
            "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#8cd17d")
# Colors of a dim split over mesh axis 0, axis 1, both; and of a replicated dim.
AXIS_COLORS = {"0": "#2b5c8a", "1": "#b8431a", "01": "#6a3d9a", "10": "#6a3d9a"}
REPLICATED_COLOR = "#d9dde3"

_CELL_W, _CELL_H, _GAP = 112, 76, 6      # px: one device of the grid
_MARGIN, _HOST_LABEL_W = 24, 64          # px
_ROW_H, _NAME_W, _SPEC_W, _SEG_W = 20, 300, 90, 96   # px: sharding tables
# Largest cluster drawn one cell per device; beyond it, one bar per stage.
MAX_GRID_HOSTS, MAX_GRID_DEVICES_PER_HOST = 64, 32
_FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
_MONO = "DejaVu Sans Mono, Menlo, Consolas, monospace"


def stage_color(index: int) -> str:
    """The fill color of stage ``index``'s box in the device grid (#rrggbb)."""
    if index < len(_PALETTE):
        return _PALETTE[index]
    hue = (index * 0.618033988749895) % 1.0
    r, g, b = colorsys.hls_to_rgb(hue, 0.55, 0.55)
    return "#%02x%02x%02x" % (round(r * 255), round(g * 255), round(b * 255))


def _tint(color: str, amount: float = 0.75) -> str:
    """``color`` mixed with white (``amount`` of white)."""
    rgb = [int(color[i:i + 2], 16) for i in (1, 3, 5)]
    return "#%02x%02x%02x" % tuple(round(c + (255 - c) * amount) for c in rgb)


# ---- numbers and names ---------------------------------------------------------

def format_seconds(t: float) -> str:
    """``3.2e-5`` -> ``"32.0 µs"``."""
    if t == 0:
        return "0 s"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if abs(t) >= scale:
            return f"{t / scale:.3g} {unit}"
    return f"{t * 1e9:.3g} ns"


def format_bytes(n: float) -> str:
    """``1536`` -> ``"1.5 KiB"``."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} B"


def stage_modules(param_names: Sequence[str]) -> List[str]:
    """The layers (module paths up to their first list index) a stage's
    parameters belong to, runs of consecutive indices merged:
    ``["blocks.0.0.weight", "blocks.1.2.bias"]`` -> ``["blocks.0-1"]``."""
    layers: List[str] = []
    for name in param_names:
        layer = layer_of(name.rsplit(".", 1)[0] if "." in name else "")
        if layer not in layers:
            layers.append(layer)
    merged: List[Tuple[str, int, int]] = []   # (prefix, first, last) or (name, -1, -1)
    for layer in layers:
        m = re.fullmatch(r"(.*\.)([0-9]{1,18})", layer)   # a list index, as an int
        if m and merged and merged[-1][0] == m.group(1) and merged[-1][2] + 1 == int(m.group(2)):
            merged[-1] = (m.group(1), merged[-1][1], int(m.group(2)))
        elif m:
            merged.append((m.group(1), int(m.group(2)), int(m.group(2))))
        else:
            merged.append((layer, -1, -1))
    return [p if a < 0 else (f"{p}{a}" if a == b else f"{p}{a}-{b}") for p, a, b in merged]


def spec_parts(spec: str) -> Tuple[List[Tuple[str, int]], str]:
    """Per dim (the mesh axes splitting it, as a string; its block factor),
    and the partial-sum axes, read by the C++ parser:
    ``"RS0x3P1"`` -> ``([("", 1), ("0", 3)], "1")``."""
    try:
        dims, partial = _C.sharding_spec_parts(spec)
    except ValueError as e:
        raise ValueError(f"cannot read sharding spec {spec!r}: {e}") from None
    return ([("".join(map(str, axes)), int(block)) for axes, block in dims],
            "".join(map(str, partial)))


def spec_dims(spec: str) -> Tuple[List[str], str]:
    """Per-dim tokens and the partial-sum axes of a spec string:
    ``"S0RP1"`` -> ``(["S0", "R"], "1")``; ``"RS0x3"`` -> ``(["R", "S0x3"], "")``."""
    dims, partial = spec_parts(spec)
    return [f"S{axes}" + (f"x{block}" if block != 1 else "") if axes else "R"
            for axes, block in dims], partial


def _shards(axes: str, mesh_shape: Sequence[int]) -> int:
    """Pieces a dim split over ``axes`` is cut into on a logical mesh (as the
    planner reads it: (1, n) is the one-dimensional mesh (n, 1))."""
    shape = list(mesh_shape)
    if len(shape) == 2 and shape[0] == 1:
        shape.reverse()
    n = 1
    for axis in axes:
        n *= shape[int(axis)] if int(axis) < len(shape) else 1
    return n


# ---- SVG building blocks -------------------------------------------------------

# Characters XML 1.0 does not allow (a plan's names may hold any).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _escape(s: str) -> str:
    """``s`` as XML text: escaped, characters XML cannot hold replaced by U+FFFD."""
    return html.escape(_NOT_XML.sub("\ufffd", s))


def _text(x, y, s, size=12, weight="normal", anchor="start", family=_FONT, fill="#1f2328"):
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-family="{family}" font-size="{size}" '
            f'font-weight="{weight}" text-anchor="{anchor}" fill="{fill}">'
            f'{_escape(s)}</text>')


def _rect(x, y, w, h, fill, stroke="none", rx=0, extra=""):
    return (f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="{rx}" '
            f'fill="{fill}" stroke="{stroke}"{extra}/>')


def _fit(s: str, width_px: float, size: int = 12, char_w: float = 0.56) -> str:
    """``s`` cut with an ellipsis to about ``width_px`` at font ``size``
    (``char_w``: mean glyph width in ems; 0.6 for the monospace font)."""
    n = max(3, int(width_px / (char_w * size)))
    return s if len(s) <= n else s[: n - 1] + "…"


def _stage_rects(stage: Stage, devices_per_host: int) -> List[Tuple[int, int, int, int]]:
    """Grid rectangles (first host, host count, first device, device count)
    covering the stage's devices: one per run of consecutive devices on a
    host, runs shared by consecutive hosts merged into one box."""
    runs: Dict[int, List[Tuple[int, int]]] = {}
    for d in sorted(stage.device_ids):
        host, local = divmod(d, devices_per_host)
        host_runs = runs.setdefault(host, [])
        if host_runs and host_runs[-1][0] + host_runs[-1][1] == local:
            host_runs[-1] = (host_runs[-1][0], host_runs[-1][1] + 1)
        else:
            host_runs.append((local, 1))
    rects: List[Tuple[int, int, int, int]] = []
    for host in sorted(runs):
        for first, count in runs[host]:
            last = rects[-1] if rects else None
            if last and last[0] + last[1] == host and (last[2], last[3]) == (first, count) \
                    and len(runs[host]) == 1:
                rects[-1] = (last[0], last[1] + 1, first, count)
            else:
                rects.append((host, 1, first, count))
    return rects


def _grid(plan: Plan, top: float) -> Tuple[List[str], float]:
    """The device grid with one box per stage; returns (elements, bottom y).
    A cluster beyond MAX_GRID_HOSTS × MAX_GRID_DEVICES_PER_HOST gets one bar
    per stage instead (``_stage_list``), so the picture stays small."""
    cluster = plan.cluster_spec
    hosts, per_host = cluster["num_hosts"], cluster["devices_per_host"]
    left = _MARGIN + _HOST_LABEL_W
    out = [_text(_MARGIN, top + 14, f"devices: {hosts} host(s) × {per_host} "
                 f"{cluster['device']['name']} (cluster {cluster['name']})", 14, "bold")]
    top += 26
    if not grid_fits(plan):
        return _stage_list(plan, out, top)
    for h in range(hosts):
        y = top + h * (_CELL_H + _GAP)
        out.append(_text(_MARGIN, y + _CELL_H / 2 + 4, f"host {h}", 12, "bold"))
        for d in range(per_host):
            out.append(_rect(left + d * (_CELL_W + _GAP), y, _CELL_W, _CELL_H, "#f4f5f7",
                             "#c9ced6", 6))
    for stage in plan.stages:
        out += _stage_box(stage, per_host, left, top)
    for h in range(hosts):
        for d in range(per_host):
            x = left + d * (_CELL_W + _GAP) + _CELL_W - 6
            out.append(_text(x, top + h * (_CELL_H + _GAP) + _CELL_H - 6,
                             f"dev {h * per_host + d}", 9, anchor="end", fill="#39404a"))
    return out, top + hosts * (_CELL_H + _GAP)


def grid_fits(plan: Plan) -> bool:
    """Whether the picture draws the cluster one cell per device."""
    cluster = plan.cluster_spec
    return (cluster["num_hosts"] <= MAX_GRID_HOSTS
            and cluster["devices_per_host"] <= MAX_GRID_DEVICES_PER_HOST)


def _stage_list(plan: Plan, out: List[str], top: float) -> Tuple[List[str], float]:
    """Instead of the grid: a note, then one colored bar per stage naming its
    hosts and devices."""
    per_host = plan.cluster_spec["devices_per_host"]
    out.append(_text(_MARGIN, top + 12, f"too many devices to draw one cell each (the grid "
                     f"shows up to {MAX_GRID_HOSTS} hosts × {MAX_GRID_DEVICES_PER_HOST} devices); "
                     f"the stages' devices:", 12))
    top += 22
    for stage in plan.stages:
        hosts = sorted({d // per_host for d in stage.device_ids})
        label = (f"stage {stage.index}: devices {_ranges(stage.device_ids)} on host(s) "
                 f"{_ranges(hosts)} · mesh {'×'.join(str(n) for n in stage.mesh_shape)}")
        out.append(_rect(_MARGIN, top, 18, 18, stage_color(stage.index), "#1f2328", 3,
                         f' data-stage="{stage.index}"'))
        out.append(_text(_MARGIN + 26, top + 14, _fit(label, 1200, 12), 12))
        top += 24
    return out, top


def _stage_box(stage: Stage, per_host: int, left: float, top: float) -> List[str]:
    color = stage_color(stage.index)
    out = []
    rects = _stage_rects(stage, per_host)
    for host, nh, first, nd in rects:
        x = left + first * (_CELL_W + _GAP)
        y = top + host * (_CELL_H + _GAP)
        w = nd * _CELL_W + (nd - 1) * _GAP
        h = nh * _CELL_H + (nh - 1) * _GAP
        out.append(_rect(x, y, w, h, color, "#1f2328", 6,
                         f' stroke-width="1.5" data-stage="{stage.index}"'))
    host, _, first, nd = rects[0]
    x = left + first * (_CELL_W + _GAP) + 7
    y = top + host * (_CELL_H + _GAP)
    width = nd * _CELL_W + (nd - 1) * _GAP - 14
    lo, hi = stage.layers
    modules = ", ".join(stage_modules(list(stage.param_specs))) or "no parameters"
    shape = "×".join(str(n) for n in stage.mesh_shape)
    out.append(_text(x, y + 17, f"stage {stage.index}", 13, "bold"))
    out.append(_text(x, y + 33, _fit(f"layers {lo}..{hi}", width, 11), 11))
    out.append(_text(x, y + 47, _fit(modules, width, 11), 11))
    out.append(_text(x, y + 61, _fit(f"mesh {shape}", width, 11), 11))
    return out


def _legend(x: float, y: float) -> List[str]:
    """Key of the dim colors of the sharding bars."""
    out = [_text(x, y + 12, "dims:", 11, "bold")]
    x += 40
    for label, color in (("replicated", REPLICATED_COLOR), ("split on mesh axis 0", AXIS_COLORS["0"]),
                         ("split on mesh axis 1", AXIS_COLORS["1"]),
                         ("split on axes 0 and 1", AXIS_COLORS["01"])):
        out.append(_rect(x, y + 2, 14, 12, color, "#8a929c", 2))
        out.append(_text(x + 19, y + 12, label, 11))
        x += 24 + len(label) * 6.4
    return out


def _stage_header(stage: Stage, plan: Plan, y: float, width: float) -> Tuple[List[str], float]:
    """Band with the stage's place and numbers; returns (elements, bottom y)."""
    color = stage_color(stage.index)
    lo, hi = stage.layers
    modules = ", ".join(stage_modules(list(stage.param_specs))) or "no parameters"
    collectives = stage.collectives()
    lines = [
        f"stage {stage.index} — layers {lo}..{hi}: {modules}",
        f"sub-mesh {stage.submesh[0]}×{stage.submesh[1]} (hosts × devices) · devices "
        f"{_ranges(stage.device_ids)} · logical mesh "
        f"{'×'.join(str(n) for n in stage.mesh_shape)} · receives {len(stage.inputs)} "
        f"value(s), sends {len(stage.outputs)}",
        f"time {format_seconds(stage.predicted_time)} (compute "
        f"{format_seconds(stage.compute_time)}, communication "
        f"{format_seconds(stage.communication_time)}) · memory "
        f"{format_bytes(stage.memory_bytes)}/device · {len(collectives)} collective(s), "
        f"{format_bytes(sum(c.bytes for c in collectives))} per device"]
    inner = width - 2 * _MARGIN - 24
    return [_rect(_MARGIN, y, width - 2 * _MARGIN, 60, _tint(color), "#8a929c", 4),
            _rect(_MARGIN, y, 8, 60, _tint(color, 0.35)),
            _text(_MARGIN + 16, y + 18, _fit(lines[0], inner, 13), 13, "bold"),
            _text(_MARGIN + 16, y + 35, _fit(lines[1], inner, 11), 11),
            _text(_MARGIN + 16, y + 51, _fit(lines[2], inner, 11), 11)], y + 68


def _ranges(ids: Sequence[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2, 5"``."""
    parts: List[List[int]] = []
    for i in sorted(ids):
        if parts and parts[-1][1] + 1 == i:
            parts[-1][1] = i
        else:
            parts.append([i, i])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in parts)


def _spec_row(name: str, spec: str, mesh_shape: Sequence[int], y: float,
              note: str = "") -> List[str]:
    """One parameter or input: name, spec string, one bar segment per dim."""
    x = _MARGIN + 8
    out = [_text(x, y + 14, _fit(name + note, _NAME_W - 8, 12, 0.6), 12, family=_MONO),
           _text(x + _NAME_W, y + 14, spec or "(scalar)", 12, "bold", family=_MONO)]
    dims, partial = spec_parts(spec)
    x += _NAME_W + _SPEC_W
    for d, (axes, block) in enumerate(dims):
        split = bool(axes)
        fill = AXIS_COLORS.get(axes, AXIS_COLORS["01"]) if split else REPLICATED_COLOR
        blocks = f" x{block}" if block != 1 else ""   # block-interleaved (S0x3)
        label = (f"dim {d}: ÷{_shards(axes, mesh_shape)} ax {','.join(axes)}{blocks}"
                 if split else f"dim {d}: whole")
        out.append(_rect(x, y + 2, _SEG_W - 4, _ROW_H - 4, fill, "#8a929c", 3))
        out.append(_text(x + (_SEG_W - 4) / 2, y + 14, label, 10,
                         anchor="middle", fill="#ffffff" if split else "#1f2328"))
        x += _SEG_W
    if partial:
        out.append(_text(x + 4, y + 14, f"partial sum over axis {','.join(partial)}", 10))
    return out


def _stage_section(stage: Stage, plan: Plan, y: float, width: float) -> Tuple[List[str], float]:
    out, y = _stage_header(stage, plan, y, width)
    rows = [(name, spec, "") for name, spec in stage.param_specs.items()]
    metas = {v["name"]: v.get("meta", "") for v in stage.inputs}
    rows += [(name, spec, f"  (input {metas[name]})" if metas.get(name) else "  (input)")
             for name, spec in stage.input_specs.items()]
    if not rows:
        out.append(_text(_MARGIN + 8, y + 14, "(no parameters or inputs)", 12))
        return out, y + _ROW_H + 12
    for i, (name, spec, note) in enumerate(rows):
        if i % 2:
            out.append(_rect(_MARGIN, y, width - 2 * _MARGIN, _ROW_H, "#f7f8fa"))
        out += _spec_row(name, spec, stage.mesh_shape, y, note)
        y += _ROW_H
    return out, y + 14


def _max_dims(plan: Plan) -> int:
    return max([len(spec_parts(s)[0]) for st in plan.stages
                for s in list(st.param_specs.values()) + list(st.input_specs.values())] + [1])


def plan_svg(plan: Plan) -> str:
    """The whole picture as a standalone SVG document."""
    cluster = plan.cluster_spec
    grid_w = 2 * _MARGIN + _HOST_LABEL_W + (
        cluster["devices_per_host"] * (_CELL_W + _GAP) if grid_fits(plan) else 1200)
    table_w = 2 * _MARGIN + 8 + _NAME_W + _SPEC_W + _max_dims(plan) * _SEG_W + 170
    width = max(900, grid_w, table_w)
    stages = len(plan.stages)
    body = [_text(_MARGIN, 30, f"alpa_torch plan for {plan.graph_name!r}", 18, "bold"),
            _text(_MARGIN, 50, _fit(
                f"{stages} stage(s) · {plan.num_micro_batches} microbatch(es) · schedule "
                f"{plan.schedule} · predicted step {format_seconds(plan.predicted_step_time)} · "
                f"peak memory {format_bytes(plan.memory_per_device)}/device · cost mode "
                f"{plan.cost_mode}",
                width - 2 * _MARGIN, 12), 12)]
    grid, y = _grid(plan, 66)
    body += grid
    y += 10
    body += [_text(_MARGIN, y + 14, "sharding per stage", 14, "bold")]
    body += _legend(_MARGIN + 160, y + 1)
    y += 26
    for stage in plan.stages:
        section, y = _stage_section(stage, plan, y, width)
        body += section
    height = y + _MARGIN
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {width:.0f} {height:.0f}">\n'
            f'<title>alpa_torch plan for {_escape(plan.graph_name)}</title>\n'
            + _rect(0, 0, width, height, "#ffffff"))
    return head + "\n" + "\n".join(body) + "\n</svg>\n"


def plan_html(plan: Plan, explain_text: str = "") -> str:
    """An HTML page: the SVG inline, then the plan's text explanation."""
    title = f"alpa_torch plan for {plan.graph_name}"
    details = ""
    if explain_text:
        details = ("<details open=\"open\"><summary>plan as text (alpa-torch explain)</summary>\n"
                   f"<pre>{_escape(explain_text)}</pre></details>\n")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n"
            f"<title>{_escape(title)}</title>\n<style>body{{font-family:{_FONT};"
            "margin:16px;color:#1f2328}pre{background:#f6f8fa;padding:12px;overflow:auto;"
            "font-size:12px}svg{max-width:100%;height:auto}</style>\n</head>\n<body>\n"
            + plan_svg(plan) + details + "</body>\n</html>\n")


def save_drawing(plan: Plan, path: str, explain_text: str = "") -> str:
    """Writes ``plan_svg`` (``.svg``) or ``plan_html`` (``.html``/``.htm``) to
    ``path``; returns the format written. Raises ValueError for another suffix."""
    lower = str(path).lower()
    if lower.endswith(".svg"):
        text, kind = plan_svg(plan), "svg"
    elif lower.endswith((".html", ".htm")):
        text, kind = plan_html(plan, explain_text), "html"
    else:
        raise ValueError(f"cannot tell the picture format of {str(path)!r}; name the "
                         f"output file *.svg or *.html")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return kind
