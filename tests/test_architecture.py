"""The layout holds: no import cycle anywhere in the three packages, dependencies point one way
(algorithms → agents, thinksolve_env; agents and thinksolve_env → nothing of ours), and no
private name crosses a package boundary."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from test_lab_boundary import resolved_imports

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("thinksolve_env", "agents", "algorithms")


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES.get(name, Path()).name == "__init__.py"


def _imports(name: str, path: Path) -> list[tuple[str, str | None, int]]:
    """``(module, imported name or None, line)`` for every import in the file, nested ones included
    (an import inside a function still ties the modules together), relative ones resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return [(mod, item, line) for mod, item, _, line in resolved_imports(tree, name, _is_package(name))]


def _edges() -> dict[str, set[str]]:
    """Module → our modules it imports. ``from pkg import sub`` is an edge to ``pkg.sub`` when
    that is a module (importing a submodule runs the package's ``__init__`` first, but the
    package does not depend on the importer, so that is no cycle)."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for name, path in MODULES.items():
        for mod, item, _ in _imports(name, path):
            if item and f"{mod}.{item}" in MODULES:
                graph[name].add(f"{mod}.{item}")
            elif mod in MODULES:
                graph[name].add(mod)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), plus self-imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph[v]:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_walk_sees_the_modules_and_their_imports():
    graph = _edges()
    assert "algorithms.train.trainer" in graph and "algorithms.rollout.collect" in graph
    assert "algorithms.rollout" in graph["algorithms.train.trainer"]
    # the detector finds a cycle when there is one
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]


def test_no_import_cycle():
    cycles = _cycles(_edges())
    assert not cycles, "import cycles (each line one strongly connected group of modules):\n" + "\n".join(
        " <-> ".join(c) for c in cycles)


@pytest.mark.parametrize("pkg,allowed", [("thinksolve_env", set()), ("agents", set()),
                                         ("algorithms", {"agents", "thinksolve_env"})])
def test_dependencies_point_one_way(pkg, allowed):
    bad = []
    for name, path in MODULES.items():
        if name.split(".")[0] != pkg:
            continue
        for mod, _, line in _imports(name, path):
            top = mod.split(".")[0]
            if top in PACKAGES and top != pkg and top not in allowed:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {mod}")
    assert not bad, "\n".join(bad)


def test_no_private_name_crosses_a_package():
    """``from other_package... import _name`` is refused: what another package needs is public."""
    bad = []
    for name, path in MODULES.items():
        for mod, item, line in _imports(name, path):
            top = mod.split(".")[0]
            if top in PACKAGES and top != name.split(".")[0]:
                private = [p for p in mod.split(".") + [item or ""] if p.startswith("_") and not p.startswith("__")]
                if private:
                    bad.append(f"{path.relative_to(ROOT)}:{line} imports {mod}.{item}")
    assert not bad, "\n".join(bad)


def _public_functions(tree: ast.Module):
    """Module-level functions and methods of module-level classes whose names (and whose class's
    name) do not start with ``_``; ``__init__`` and ``__call__`` of a public class count too."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
            yield node.name, node
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and (
                        not item.name.startswith("_") or item.name in ("__init__", "__call__")):
                    yield f"{node.name}.{item.name}", item


def test_public_functions_have_type_hints():
    missing = []
    for name, path in MODULES.items():
        if any(part.startswith("_") for part in name.split(".")):
            continue  # a private module (e.g. thinksolve_env._verify_worker)
        for qual, fn in _public_functions(ast.parse(path.read_text())):
            args = fn.args
            params = [*args.posonlyargs, *args.args, *args.kwonlyargs]
            if params and params[0].arg in ("self", "cls") and "." in qual:
                params = params[1:]
            params += [a for a in (args.vararg, args.kwarg) if a is not None]
            untyped = [a.arg for a in params if a.annotation is None]
            if untyped or fn.returns is None:
                what = ", ".join(untyped + ([] if fn.returns is not None else ["return"]))
                missing.append(f"{path.relative_to(ROOT)}:{fn.lineno} {qual}: {what}")
    assert not missing, f"{len(missing)} public functions lack type hints:\n" + "\n".join(missing)


def _architecture_rooms() -> list[tuple[str, list[str]]]:
    """``(module path under algorithms/, names)`` for every row of docs/architecture.md's table of
    rooms: a folder row (`` `x/` ``) sets the folder of the indented file rows under it."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text.split("## `algorithms/`, one room per concern", 1)[1].split("\n## ", 1)[0]
    rooms, folder = [], ""
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 3 or set(cells[0]) <= {"-", " "} or cells[0] == "room":
            continue
        names = re.findall(r"`([^`]+)`", cells[-1])
        files = re.findall(r"`([a-z_]+(?:\.py|/))`", cells[0])
        indented = cells[0].startswith("&nbsp;")
        if not indented:
            folder = files[0] if files[0].endswith("/") else ""
            rooms.append((files[0], names))
        else:
            rooms += [(folder + f, names if len(files) == 1 else names[i:i + 1]) for i, f in enumerate(files)]
    return rooms


def test_the_architecture_page_names_every_room_and_its_names_live_there():
    import importlib

    rooms = _architecture_rooms()
    documented = {room for room, _ in rooms}
    assert "train/trainer.py" in documented and "rollout/" in documented  # the parser reads the table
    algo = ROOT / "algorithms"
    for room, names in rooms:
        assert (algo / room).exists(), f"docs/architecture.md names algorithms/{room}, which does not exist"
        module = importlib.import_module("algorithms." + room.removesuffix(".py").removesuffix("/").replace("/", "."))
        missing = [n for n in names if not hasattr(module, n.split(".")[0])]
        assert not missing, f"docs/architecture.md lists {missing} in algorithms/{room}, which does not define them"
    undocumented = []
    for path in sorted(algo.rglob("*.py")):
        rel_path = path.relative_to(algo).as_posix()
        if path.name == "__init__.py" and rel_path != "__init__.py":
            continue
        folder = rel_path.rpartition("/")[0] + "/" if "/" in rel_path else ""
        has_file_rows = any(r.startswith(folder) and r.endswith(".py") for r in documented) if folder else True
        if rel_path not in documented and rel_path != "__init__.py" and (has_file_rows or folder not in documented):
            undocumented.append(rel_path)
    assert not undocumented, f"modules docs/architecture.md does not place: {undocumented}"
