"""Fuzz target (e): the TorchScript importer (csrc/runtime/torchscript_import.cc)
through ``alpa_torch._runtime.import_torchscript``.

Input: the bytes of a TorchScript file (torch.jit.save's zip). The example
input types are read from the archive's extra file ``extra/fuzz_inputs``
(one tensor type per line, e.g. ``f32[2,8]``; seeds write it with
``_extra_files``), so one file carries the module and its input shapes. The
mutator edits the TorchScript source in the archive, the input types, the
pickled constants, or the raw bytes. An imported graph must load
(``Graph.from_json``), round-trip, and plan on a (1, 2) mesh.
"""
from __future__ import annotations

import io
import random
import re
import zipfile

from common import Finding, allowed, same_json

import torch  # noqa: F401  (the runtime extension needs libtorch loaded)

import alpa_torch
from alpa_torch import _C, _runtime

DEFAULT_INPUTS = ["f32[2,8]"]


def read_archive(data: bytes):
    """{name: bytes} of the zip, or None when it is not one."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return {i.filename: z.read(i) for i in z.infolist()}
    except Exception:  # noqa: BLE001 - any damage: not a readable zip
        return None


def write_archive(files) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for name, body in files.items():
            z.writestr(name, body)
    return out.getvalue()


def input_specs(files):
    if files:
        for name, body in files.items():
            if name.endswith("extra/fuzz_inputs"):
                return body.decode("utf-8", "replace").splitlines()
    return list(DEFAULT_INPUTS)


def one_input(data: bytes) -> None:
    specs = input_specs(read_archive(data))
    ok, text = allowed(_runtime.import_torchscript, data, specs)
    if not ok:
        return
    graph = alpa_torch.CapturedGraph(_C.Graph.from_json(text))
    same_json(text, graph.to_json(), "imported graph: to_json -> Graph.from_json -> to_json")
    ok, plan = allowed(alpa_torch.plan, graph, mesh_shape=(1, 2), time_limit_s=10.0)
    if ok:
        same_json(plan.to_json(), alpa_torch.Plan.from_json(plan.to_json()).to_json(),
                  "plan of the imported graph")


# ---- mutator --------------------------------------------------------------------------

_OPS = ["linear", "relu", "matmul", "softmax", "layer_norm", "embedding", "view", "reshape",
        "transpose", "permute", "add", "mul", "sum", "mean", "cat", "stack", "split", "chunk",
        "conv2d", "max_pool2d", "dropout", "gelu", "tanh", "size", "dim", "zeros", "ones",
        "arange", "item", "lgamma", "sort", "topk", "nonzero", "unsqueeze", "squeeze",
        "expand", "flatten", "select", "slice", "masked_fill", "where", "tril", "to"]
_DTYPES = ["f32", "f64", "f16", "bf16", "i64", "i32", "i8", "u8", "bool", "c64", "f8", ""]
_DIMS = ["0", "1", "2", "3", "8", "-1", "2147483648", "4294967296", "9223372036854775807",
         "99999999999999999999", "1e3", "", " 2"]


def _mutate_specs(lines, rng):
    lines = list(lines) or list(DEFAULT_INPUTS)
    i = rng.randrange(len(lines))
    op = rng.randrange(5)
    if op == 0:
        dims = re.findall(r"[^\[\],]+", lines[i].split("[", 1)[-1])
        dims = dims or ["2"]
        dims[rng.randrange(len(dims))] = rng.choice(_DIMS)
        if rng.random() < 0.3:
            dims.append(rng.choice(_DIMS))
        lines[i] = lines[i].split("[", 1)[0] + "[" + ",".join(dims) + "]"
    elif op == 1:
        lines[i] = rng.choice(_DTYPES) + "[" + lines[i].split("[", 1)[-1]
    elif op == 2:
        lines.append(rng.choice(lines))
    elif op == 3 and len(lines) > 1:
        del lines[i]
    else:
        lines[i] = lines[i][: rng.randrange(len(lines[i]) + 1)]
    return lines


def _mutate_code(src: str, rng) -> str:
    tokens = re.split(r"(\W)", src)
    words = [n for n, t in enumerate(tokens) if t.strip()]
    if not words:
        return src
    for _ in range(rng.randint(1, 3)):
        n = rng.choice(words)
        t = tokens[n]
        if t.isdigit():
            tokens[n] = rng.choice(["0", "1", "2", "-1", "3", "64", "100000", "2147483648"])
        elif t in _OPS or rng.random() < 0.5:
            tokens[n] = rng.choice(_OPS)
        elif rng.random() < 0.5:
            tokens[n] = tokens[rng.choice(words)]
        else:
            lines = "".join(tokens).split("\n")
            a, b = rng.randrange(len(lines)), rng.randrange(len(lines))
            lines.insert(a, lines[b])
            return "\n".join(lines)
    return "".join(tokens)


def mutate(data: bytes, max_size: int, seed: int) -> bytes:
    import atheris
    rng = random.Random(seed)
    files = read_archive(data)
    if not files or rng.random() < 0.1:
        return atheris.Mutate(data, max_size)
    try:
        return _mutate_archive(files, data, max_size, rng)
    except Exception:  # noqa: BLE001 - an archive the editor cannot handle
        return atheris.Mutate(data, max_size)


def _mutate_archive(files, data: bytes, max_size: int, rng) -> bytes:
    import atheris
    code = [n for n in files if n.endswith(".py") and "/code/" in n]
    pickles = [n for n in files if n.endswith(".pkl")]
    extra = next((n for n in files if n.endswith("extra/fuzz_inputs")), None)
    r = rng.random()
    if r < 0.35 or not code:
        lines = _mutate_specs(input_specs(files), rng)
        name = extra or next(iter(files)).split("/")[0] + "/extra/fuzz_inputs"
        files[name] = "\n".join(lines).encode()
    elif r < 0.85:
        name = rng.choice(code)
        files[name] = _mutate_code(files[name].decode("utf-8", "replace"), rng).encode()
    elif pickles:
        name = rng.choice(pickles)
        files[name] = atheris.Mutate(files[name], max(len(files[name]) * 2, 64))
    out = write_archive(files)
    return out if len(out) <= max_size else data
