"""The layout of alpa_torch/ (README "Tour"): imports follow the data.

Read from the source (ast), nothing imported, no processes:
- no import cycle among alpa_torch's modules (imports inside functions
  count: a lazy import hides a cycle, it does not remove it);
- the stages depend only on earlier ones: graph → planning → emit →
  runtime → the doors (the top-level modules), with errors.py and the
  compiled modules (_C, _runtime) under all of them;
- no module imports, or reaches through a module for, another module's
  private (underscore) names; the compiled modules are the package's
  bindings and exempt;
- every public module lists its public names in ``__all__``, and each
  listed name exists.

The checks are plain functions over {module: imports}, tested here on
small fake graphs and files too, so that they can be seen to fail.
"""
from __future__ import annotations

import ast
import os
from typing import Dict, List, Optional, Sequence, Set, Tuple

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_DIR = os.path.join(os.path.dirname(os.path.dirname(HERE)), "alpa_torch")

# the compiled modules (CMake builds them into alpa_torch/)
EXTENSIONS = ("alpa_torch._C", "alpa_torch._runtime")
# the order data moves through the package; a module may import its own
# stage and earlier ones. The doors: alpa_torch/*.py (and __init__).
STAGES = ("errors", "graph", "planning", "emit", "runtime", "doors")


# ---- reading the package -------------------------------------------------------

def find_modules(package_dir: str, package: str = "alpa_torch") -> Dict[str, str]:
    """Dotted module name -> path of every .py file under `package_dir`."""
    out = {}
    for root, dirs, files in os.walk(package_dir):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.startswith("."))
        rel = os.path.relpath(root, package_dir)
        parts = [package] + ([] if rel == "." else rel.split(os.sep))
        for f in sorted(files):
            if not f.endswith(".py"):
                continue
            name = ".".join(parts if f == "__init__.py" else parts + [f[:-3]])
            out[name] = os.path.join(root, f)
    return out


class Import:
    """One import: `module` (resolved, dotted), the `name` taken from it
    (None for ``import module``), the local name it binds, the line."""

    def __init__(self, module: str, name: Optional[str], bound: str, line: int):
        self.module, self.name, self.bound, self.line = module, name, bound, line


def _resolve_relative(module: str, is_package: bool, level: int, target: Optional[str]) -> str:
    base = module.split(".")
    base = base if is_package else base[:-1]
    if level > 1:
        base = base[:-(level - 1)]
    return ".".join(base + ([target] if target else []))


def read_imports(module: str, path: str) -> Tuple[List[Import], ast.Module]:
    """Every import statement of the file, at any depth (function bodies too)."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    is_package = os.path.basename(path) == "__init__.py"
    out: List[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend(Import(a.name, None, a.asname or a.name.split(".")[0], node.lineno)
                       for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = (node.module or "") if node.level == 0 else \
                _resolve_relative(module, is_package, node.level, node.module)
            out.extend(Import(source, a.name, a.asname or a.name, node.lineno) for a in node.names)
    return out, tree


def import_graph(modules: Dict[str, str], extensions: Sequence[str] = EXTENSIONS
                 ) -> Dict[str, Set[str]]:
    """Module -> the package's modules it imports. ``from pkg import x``
    is an edge to ``pkg.x`` when that is a module, else to ``pkg``; the
    compiled modules are leaves."""
    known = set(modules) | set(extensions)
    graph: Dict[str, Set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        for imp in read_imports(module, path)[0]:
            if imp.name is not None and f"{imp.module}.{imp.name}" in known:
                graph[module].add(f"{imp.module}.{imp.name}")
            elif imp.module in known:
                graph[module].add(imp.module)
    return graph


# ---- the checks ----------------------------------------------------------------

def find_cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """One cycle (``[a, b, ..., a]``) per strongly connected component with
    more than one module, or a module importing itself (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    components: List[List[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_cycle_through(graph, c) for c in sorted(components)]


def _cycle_through(graph: Dict[str, Set[str]], component: List[str]) -> List[str]:
    """A shortest path from the component's first module back to itself."""
    members, start = set(component), component[0]
    paths = {start: [start]}
    todo = [start]
    while todo:
        v = todo.pop(0)
        for w in sorted(graph.get(v, ())):
            if w == start:
                return paths[v] + [start]
            if w in members and w not in paths:
                paths[w] = paths[v] + [w]
                todo.append(w)
    return component + [start]


def stage_of(module: str, package: str = "alpa_torch") -> str:
    """The data-flow stage a module belongs to (see STAGES)."""
    parts = module.split(".")
    if parts[0] != package:
        raise ValueError(f"{module} is not in {package}")
    if module in EXTENSIONS or parts[1:] == ["errors"]:
        return "errors"
    if len(parts) > 2 or (len(parts) == 2 and parts[1] in STAGES[1:-1]):
        return parts[1]
    return "doors"


def backward_imports(graph: Dict[str, Set[str]]) -> List[str]:
    """'a imports b' for each import of a later stage by an earlier one."""
    rank = {s: i for i, s in enumerate(STAGES)}
    return [f"{m} ({stage_of(m)}) imports {t} ({stage_of(t)})"
            for m in sorted(graph) for t in sorted(graph[m])
            if rank[stage_of(t)] > rank[stage_of(m)]]


def private_uses(modules: Dict[str, str], extensions: Sequence[str] = EXTENSIONS) -> List[str]:
    """'module:line: what' for each private name of another alpa_torch
    module that a module imports (``from m import _x``) or reads through a
    module it imported (``m._x``, ``alpa_torch.m._x``)."""
    known = set(modules) | set(extensions)
    found = []

    def private(name: str) -> bool:
        return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))

    for module, path in sorted(modules.items()):
        imports, tree = read_imports(module, path)
        aliases: Dict[str, str] = {}  # local name -> the alpa_torch module it is
        for imp in imports:
            if imp.module.split(".")[0] != "alpa_torch":
                continue
            if imp.name is None:  # import alpa_torch.x[.y] [as z]
                aliases[imp.bound] = imp.module if imp.bound != imp.module.split(".")[0] \
                    else imp.bound
                continue
            full = f"{imp.module}.{imp.name}"
            if full in known:
                aliases[imp.bound] = full
            if private(imp.name) and full not in extensions and imp.module != module:
                found.append(f"{module}:{imp.line}: from {imp.module} import {imp.name}")
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute) or not private(node.attr):
                continue
            owner = _dotted(node.value, aliases)
            if owner is None or owner == module or f"{owner}.{node.attr}" in extensions:
                continue
            found.append(f"{module}:{node.lineno}: {owner}.{node.attr}")
    return found


def _dotted(expr: ast.expr, aliases: Dict[str, str]) -> Optional[str]:
    """The alpa_torch module an expression such as ``alpa_torch.planning.ilp``
    or an imported alias names, or None."""
    if isinstance(expr, ast.Name):
        return aliases.get(expr.id)
    if isinstance(expr, ast.Attribute):
        base = _dotted(expr.value, aliases)
        return None if base is None else f"{base}.{expr.attr}"
    return None


def missing_all(modules: Dict[str, str]) -> List[str]:
    """Public modules without ``__all__``, and names listed in it that the
    module does not define (nor has as a submodule)."""
    problems = []
    for module, path in sorted(modules.items()):
        if module.split(".")[-1].startswith("_"):
            continue  # a private module (__main__)
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        listed, defined = None, set()
        for node in tree.body:
            targets = []
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
                targets = [node.target]
            for t in targets:
                if isinstance(t, ast.Name):
                    defined.add(t.id)
                    if t.id == "__all__" and isinstance(node.value, (ast.List, ast.Tuple)):
                        listed = [e.value for e in node.value.elts if isinstance(e, ast.Constant)]
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defined.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                defined.update((a.asname or a.name).split(".")[0] for a in node.names)
        if listed is None:
            problems.append(f"{module} has no __all__")
            continue
        submodules = {m.split(".")[-1] for m in modules if m.rsplit(".", 1)[0] == module}
        for name in listed:
            if name not in defined and name not in submodules:
                problems.append(f"{module}.__all__ lists {name!r}, which it does not define")
    return problems


# ---- the package ---------------------------------------------------------------

@pytest.fixture(scope="module")
def modules() -> Dict[str, str]:
    found = find_modules(PACKAGE_DIR)
    assert "alpa_torch.graph.capture" in found and len(found) > 20, sorted(found)
    return found


def test_no_import_cycle(modules):
    cycles = find_cycles(import_graph(modules))
    assert not cycles, "import cycles in alpa_torch/: " + "; ".join(" -> ".join(c) for c in cycles)


def test_stages_import_only_earlier_stages(modules):
    wrong = backward_imports(import_graph(modules))
    assert not wrong, ("an earlier stage imports a later one (data flows "
                       + " -> ".join(STAGES) + "): " + "; ".join(wrong))


def test_no_module_uses_another_modules_private_names(modules):
    uses = private_uses(modules)
    assert not uses, ("private names used across modules (make them public, documented, or "
                      "move the code): " + "; ".join(uses))


def test_public_modules_have_all(modules):
    problems = missing_all(modules)
    assert not problems, "; ".join(problems)


def test_plan_and_capture_are_functions_not_modules(modules):
    # alpa_torch.plan / .capture / .load / .parallelize / .stage_dp are the
    # functions; no module of the package may share those names
    for name in ("plan", "capture", "load", "parallelize", "stage_dp"):
        assert f"alpa_torch.{name}" not in modules, name


# ---- the checks can fail ---------------------------------------------------------

def test_find_cycles_names_each_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a", "d"}, "e": {"f"}, "f": set()}
    assert find_cycles(graph) == [["a", "b", "c", "a"], ["d", "d"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def _write(root, files: Dict[str, str]) -> Dict[str, str]:
    for rel, text in files.items():
        path = os.path.join(str(root), "alpa_torch", rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    return find_modules(os.path.join(str(root), "alpa_torch"))


def test_checks_fail_on_a_package_that_breaks_them(tmp_path):
    modules = _write(tmp_path, {
        "__init__.py": "from alpa_torch.runtime.parallel import go\n",
        "runtime/__init__.py": "",
        # parallel <-> pipeline through a lazy import and a relative one
        "runtime/parallel.py": ("def go():\n    from alpa_torch.runtime import pipeline\n"
                                "__all__ = ['go']\n"),
        "runtime/pipeline.py": "from .parallel import _slice, go\n__all__ = ['run']\n",
        # a stage reaching forward, and for a private name through a module
        "graph/__init__.py": "__all__ = []\n",
        "graph/capture.py": ("import alpa_torch.runtime.parallel\n"
                             "x = alpa_torch.runtime.parallel._helper\n"),
    })
    graph = import_graph(modules)
    assert find_cycles(graph) == [["alpa_torch.runtime.parallel", "alpa_torch.runtime.pipeline",
                                   "alpa_torch.runtime.parallel"]]
    assert backward_imports(graph) == [
        "alpa_torch.graph.capture (graph) imports alpa_torch.runtime.parallel (runtime)"]
    uses = private_uses(modules)
    assert [u.split(": ", 1)[1] for u in uses] == [
        "alpa_torch.runtime.parallel._helper",
        "from alpa_torch.runtime.parallel import _slice"], uses
    assert missing_all(modules) == [
        "alpa_torch has no __all__",
        "alpa_torch.graph.capture has no __all__",
        "alpa_torch.runtime has no __all__",
        "alpa_torch.runtime.pipeline.__all__ lists 'run', which it does not define"]


def test_compiled_modules_are_not_private_names(tmp_path):
    modules = _write(tmp_path, {"__init__.py": "__all__ = []\n",
                                "planning/__init__.py": "__all__ = []\n",
                                "planning/ilp.py": ("from alpa_torch import _C\n"
                                                    "import alpa_torch\n"
                                                    "y = alpa_torch._runtime\n__all__ = []\n")})
    assert private_uses(modules) == []
    assert import_graph(modules)["alpa_torch.planning.ilp"] == {"alpa_torch._C", "alpa_torch"}
