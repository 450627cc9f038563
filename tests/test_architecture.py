"""Imports point down the stages, and down analysis/'s rooms, never up; no module imports itself back round a cycle.

Read from the source with ast, nothing of the package imported: every import statement counts, at module level or
inside a function (or under TYPE_CHECKING), relative or absolute. `from P import name` counts as an import of P and,
when P.name is a module, of P.name too.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "sweep"

# The stages of src/sweep, bottom first. A stage may import itself and any stage below it; the stages of one tier
# are peers and import none of each other. A stage is a top-level module or subpackage ("__init__": the package's
# own __init__.py, its __version__).
STAGES = [
    ["__init__", "files", "stats", "exits"],
    ["config"],
    ["data"],
    ["rundir", "scheduler"],  # the run directory; the scheduler's view of a sweep's jobs (jobs.jsonl, squeue, sacct)
    ["tasks"],
    ["train"],  # train/loop.py runs the task suite (tasks/runner.py): tasks sit below train
    ["evaluate"],
    ["analysis"],
    # launch: one run, and a cell's own process (preflight, Hydra's entry point, its task train_cell); status:
    # `sweep status`, over rundir and scheduler
    ["launch", "status"],
    ["grid"],  # grids: planned once (grid_plan.py), their cells run through launch's entry point and task
    ["cli"],  # dispatches `train` to launch, `train -m` to grid
    ["__main__"],
]
SAME_STAGE = {"grid_plan": "grid"}  # grid_plan.py is the grid's planning step: part of the grid stage
# analysis/'s rooms (analysis/__init__.py), bottom first, under the same rule; report/plots/ is inside report.
ROOMS = {"analysis": [["__init__"], ["inputs"], ["result"], ["laws"], ["lr", "emergence", "predict"], ["report"],
                      ["main"], ["compare"]]}


def module_names(root: Path) -> dict[str, Path]:
    """Dotted name → file, for every module of the package at `root`."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = (root.name, *path.relative_to(root).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def import_edges(root: Path) -> list[tuple[str, str, str]]:
    """(importer, imported module, where: 'pkg/file.py:LINE') for every import of the package's own modules."""
    modules = module_names(root)
    package = root.name

    def nearest(name: str) -> str | None:
        while name not in modules and "." in name:
            name = name.rsplit(".", 1)[0]
        return name if name in modules else None

    edges = []
    for importer, path in modules.items():
        here = path.relative_to(root.parent).as_posix()
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [nearest(a.name) for a in node.names if a.name.split(".")[0] == package]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = importer.split(".") if is_package else importer.split(".")[:-1]
                    parts = parts[:len(parts) - (node.level - 1)]
                    base = ".".join([*parts, *([node.module] if node.module else [])])
                else:
                    base = node.module or ""
                if base.split(".")[0] != package:
                    continue
                submodules = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules]
                targets = submodules
                if len(submodules) < len(node.names) or not importer.startswith(f"{base}."):
                    targets = [*targets, nearest(base)]  # P's own names, or P's __init__ run from outside P
            edges += [(importer, t, f"{here}:{node.lineno}") for t in targets if t and t != importer]
    return edges


def _unit(parts: list[str], tiers: list[list[str]], aliases: dict[str, str]) -> tuple[str, int | None]:
    name = aliases.get(parts[0], parts[0]) if parts else "__init__"
    return name, next((i for i, tier in enumerate(tiers) if name in tier), None)


def check_imports(root: Path, stages=STAGES, same_stage=SAME_STAGE, rooms=ROOMS, allowed_cycles=()) -> list[str]:
    """Every breach of the import rules in the package at `root`, one message each naming the file, its line and
    the module it imports."""
    edges = import_edges(root)
    problems = []
    for name, path in module_names(root).items():
        stage, tier = _unit(name.split(".")[1:], stages, same_stage)
        if tier is None:
            problems.append(f"{path.relative_to(root.parent).as_posix()} is in no stage: place {stage!r} in STAGES")
    named = {(where, imported) for _, imported, where in edges}
    for importer, imported, where in edges:
        if any(w == where and m.startswith(f"{imported}.") for w, m in named):
            continue  # `from P import module`: the message names P.module, not P as well
        a, b = importer.split(".")[1:], imported.split(".")[1:]
        (sa, ta), (sb, tb) = _unit(a, stages, same_stage), _unit(b, stages, same_stage)
        if ta is None or tb is None:
            continue
        if sa != sb:
            if tb >= ta:
                kind = "upward" if tb > ta else "between peers"
                problems.append(f"{where} imports {imported}: {kind}, stage {sa} → stage {sb}")
            continue
        if sa in rooms:  # within a stage with rooms (its __init__.py: room "__init__")
            (ra, ia), (rb, ib) = _unit(a[1:], rooms[sa], {}), _unit(b[1:], rooms[sa], {})
            if ia is None or ib is None:
                problems += [f"{where}: {m} is in no room of {sa}/"
                             for m, i in ((importer, ia), (imported, ib)) if i is None]
            elif ra != rb and ib >= ia:
                kind = "upward" if ib > ia else "between peers"
                problems.append(f"{where} imports {imported}: {kind}, {sa}/ room {ra} → room {rb}")
    problems += [f"import cycle: {cycle}" for cycle in cycles(edges, allowed_cycles)]
    return problems


def cycles(edges: list[tuple[str, str, str]], allowed=()) -> list[str]:
    """Each strongly connected set of modules (a cycle) not exactly one of `allowed`, as one path round it."""
    graph: dict[str, dict[str, str]] = {}
    for a, b, where in edges:
        graph.setdefault(a, {}).setdefault(b, where)
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:  # Tarjan's algorithm; the package is small enough for recursion
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1 and frozenset(component) not in allowed:
                found.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [" → ".join(f"{graph[a][b]} imports {b}" for a, b in zip(path, path[1:]))
            for path in (_round(graph, component, min(component)) for component in found)]


def _round(graph: dict[str, dict[str, str]], component: set[str], start: str) -> list[str]:
    """The shortest path start → … → start inside `component` (breadth-first)."""
    back, frontier = {}, [start]
    while start not in back:
        reached = []
        for v in frontier:
            for w in graph.get(v, {}):
                if w in component and w not in back:
                    back[w] = v
                    reached.append(w)
        frontier = reached
    path, w = [], back[start]
    while w != start:
        path.append(w)
        w = back[w]
    return [start, *reversed(path), start]


def test_imports_point_down_the_stages_and_rooms_without_cycles():
    assert len(import_edges(SRC)) > 100  # the reader sees the package's imports (a broken one would pass vacuously)
    assert check_imports(SRC) == []


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root / "pkg"


CLEAN = {
    "pkg/__init__.py": "",
    "pkg/base.py": "import json\n",
    "pkg/mid/__init__.py": "from .a import x\n",
    "pkg/mid/a.py": "from .. import base\nx = 1\n",
    "pkg/mid/b.py": "from .a import x\nfrom pkg.base import json\n",
    "pkg/top/__init__.py": "",
    "pkg/top/inputs.py": "import pkg.mid.b\n",
    "pkg/top/report.py": "from . import inputs\nfrom ..mid import a\n",
}
PLANTED_STAGES = [["__init__", "base"], ["mid"], ["top"]]
PLANTED_ROOMS = {"top": [["__init__"], ["inputs"], ["report"]]}


def test_the_check_reports_an_upward_import_a_room_breach_and_a_cycle_with_file_and_name(tmp_path):
    kw = dict(stages=PLANTED_STAGES, same_stage={}, rooms=PLANTED_ROOMS, allowed_cycles=())
    assert check_imports(_write(tmp_path / "clean", CLEAN), **kw) == []
    planted = {**CLEAN,
               "pkg/base.py": "import json\n\n\ndef late():\n    from pkg import top\n",  # stage base → top
               "pkg/mid/a.py": "from .. import base\nx = 1\n\n\ndef f():\n    from . import b\n",  # a ↔ b
               "pkg/top/inputs.py": "import pkg.mid.b\nfrom . import report\n"}  # room inputs → report (↔)
    problems = check_imports(_write(tmp_path / "planted", planted), **kw)
    assert "pkg/base.py:5 imports pkg.top: upward, stage base → stage top" in problems, problems
    assert "pkg/top/inputs.py:2 imports pkg.top.report: upward, top/ room inputs → room report" in problems, problems
    cycles_found = sorted(p for p in problems if p.startswith("import cycle"))
    assert cycles_found == [
        "import cycle: pkg/mid/a.py:6 imports pkg.mid.b → pkg/mid/b.py:1 imports pkg.mid.a",
        "import cycle: pkg/top/inputs.py:2 imports pkg.top.report → pkg/top/report.py:1 imports pkg.top.inputs",
    ], problems
    assert len(problems) == 4, problems
    # An allowance tolerates exactly its own cycle, nothing else.
    allowed = check_imports(tmp_path / "planted" / "pkg", **{**kw, "allowed_cycles": (frozenset({"pkg.mid.a",
                                                                                                 "pkg.mid.b"}),)})
    assert sorted(set(problems) - set(allowed)) == cycles_found[:1]
    # A module in no stage is named too.
    stray = _write(tmp_path / "stray", {**CLEAN, "pkg/extra.py": ""})
    assert check_imports(stray, **kw) == ["pkg/extra.py is in no stage: place 'extra' in STAGES"]
