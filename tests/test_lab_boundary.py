"""The credit-fidelity lab stays outside the core: ``algorithms/lab`` uses only the public API of
the core, and nothing in the core uses the lab.

The rules, checked by walking the syntax tree of every ``algorithms/lab/*.py`` (imports inside
functions included, relative imports resolved; the lab's own modules may import each other):

1. From the core (``algorithms`` outside ``algorithms.lab``) the lab imports packages only:
   ``algorithms`` itself or a package directly below it (a folder with an ``__init__.py``:
   ``algorithms.credit``, ``algorithms.optim``, ``algorithms.rollout``, ...), never a module
   below that level (``import algorithms.credit.base``, ``from algorithms.credit.base import
   x``, ``from algorithms.credit import base``) and never ``*``.
2. Every name it imports from such a package is listed in the package's ``__all__`` (read from
   its ``__init__.py``) and has no leading underscore.
3. No private attribute (one leading underscore) is read through a name imported from the
   core, directly (``credit._REGISTRY``, ``credit.REGISTRY._entries``) or by string
   (``getattr(credit, "_REGISTRY")``).
4. From ``agents`` and ``thinksolve_env`` no private module or name is imported.

And no module of the three packages outside ``algorithms/lab`` imports the lab, in any form
(``import algorithms.lab``, ``from algorithms import lab``, ``from ..lab import x``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("algorithms", "agents", "thinksolve_env")
CORE, LAB = "algorithms", "algorithms.lab"
BY_NAME = ("getattr", "hasattr", "setattr", "delattr")


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _module_name(path: Path) -> tuple[str, bool]:
    """(dotted module name, whether it is a package's ``__init__``) of a file under ROOT."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def resolved_imports(tree: ast.AST, module: str, is_package: bool) -> list[tuple[str, str | None, str | None, int]]:
    """``(module, imported name or None, bound name, line)`` for every import, relative ones resolved."""
    package = module if is_package else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, None, a.asname or a.name.split(".")[0], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out += [(mod, a.name, a.asname or a.name, node.lineno) for a in node.names]
    return out


def _is_core_package(mod: str) -> bool:
    """``algorithms`` or a package directly below it (not the lab)."""
    parts = mod.split(".")
    if parts == [CORE]:
        return True
    return len(parts) == 2 and parts[0] == CORE and mod != LAB and (ROOT / CORE / parts[1] / "__init__.py").is_file()


def _public_names(mod: str) -> set[str]:
    """The ``__all__`` of a core package, read from its ``__init__.py`` without importing it."""
    init = ROOT.joinpath(*mod.split("."), "__init__.py")
    for node in ast.parse(init.read_text()).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return set(ast.literal_eval(node.value))
    return set()


def _in(mod: str, pkg: str) -> bool:
    return mod == pkg or mod.startswith(pkg + ".")


def _chain(node: ast.AST) -> tuple[str | None, list[str]]:
    """The base name and the attribute names of ``a.b.c`` (base None when it is not a name)."""
    attrs = []
    while isinstance(node, ast.Attribute):
        attrs.append(node.attr)
        node = node.value
    return (node.id if isinstance(node, ast.Name) else None), attrs[::-1]


def boundary_violations(source: str, module: str, is_package: bool = False) -> list[str]:
    """What a lab module written as ``source`` does against the rules of this file's docstring."""
    tree = ast.parse(source)
    bad, core_names = [], set()
    for mod, item, bound, line in resolved_imports(tree, module, is_package):
        top = mod.split(".")[0]
        if top not in PACKAGES or _in(mod, LAB):
            continue
        shown = f"{mod}.{item}" if item else mod
        if top == CORE:
            core_names.add(bound)
            if item == "*":
                bad.append(f"line {line}: 'from {mod} import *'")
            elif not _is_core_package(mod):
                bad.append(f"line {line}: imports {shown}: a module below the core's package level")
            elif item is not None and (_private(item) or item not in _public_names(mod)):
                bad.append(f"line {line}: imports {shown}: not in {mod}.__all__")
        elif any(_private(p) for p in mod.split(".") + [item or ""]):
            bad.append(f"line {line}: imports {shown}: a private name")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            base, attrs = _chain(node)
            if base in core_names:
                bad.append(f"line {node.lineno}: reads {base}.{'.'.join(attrs)}: a private attribute of the core")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in BY_NAME and len(node.args) >= 2 \
                and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str) \
                and _private(node.args[1].value) and _chain(node.args[0])[0] in core_names:
            bad.append(f"line {node.lineno}: {node.func.id}(..., {node.args[1].value!r}): a private attribute of the core")
    return sorted(set(bad))


def _lab_files() -> list[Path]:
    return sorted((ROOT / "algorithms" / "lab").glob("*.py"))


def test_the_lab_is_a_package_with_modules():
    files = [p.name for p in _lab_files()]
    assert "__init__.py" in files and "fidelity.py" in files


@pytest.mark.parametrize("path", _lab_files(), ids=lambda p: p.name)
def test_the_lab_uses_only_the_public_api_of_the_core(path):
    module, is_package = _module_name(path)
    bad = boundary_violations(path.read_text(), module, is_package)
    assert not bad, f"{path.relative_to(ROOT)}:\n" + "\n".join(bad)


def test_the_core_does_not_import_the_lab():
    bad = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            module, is_package = _module_name(path)
            if _in(module, LAB):
                continue
            for mod, item, _, line in resolved_imports(ast.parse(path.read_text()), module, is_package):
                if _in(mod, LAB) or (mod == CORE and item == "lab"):
                    bad.append(f"{path.relative_to(ROOT)}:{line} imports {mod}{'.' + item if item else ''}")
    assert not bad, "the core must not depend on the lab:\n" + "\n".join(bad)


@pytest.mark.parametrize("source,needle", [
    ("from ..credit.base import joint_rewards", "below the core's package level"),
    ("import algorithms.credit.base", "below the core's package level"),
    ("from ..credit import base", "not in algorithms.credit.__all__"),
    ("from ..credit import _REGISTRY", "not in algorithms.credit.__all__"),
    ("from algorithms.optim import estimators\ndef f():\n    from ..rollout import _x", "not in algorithms.rollout.__all__"),
    ("from ..credit import *", "import *"),
    ("from .. import credit\nx = credit._REGISTRY", "reads credit._REGISTRY"),
    ("from .. import credit as c\nx = c.REGISTRY._entries.get('a')", "reads c.REGISTRY._entries"),
    ("from .. import credit\nx = getattr(credit, '_REGISTRY', {})", "getattr(..., '_REGISTRY')"),
    ("from agents.tabular import _helper", "a private name"),
])
def test_the_walk_finds_each_kind_of_violation(source, needle):
    bad = boundary_violations(source, "algorithms.lab.probe")
    assert any(needle in b for b in bad), bad


def test_the_walk_accepts_public_imports():
    ok = ("from .. import credit, estimators\nfrom ..rollout import Collected\nimport algorithms.credit\n"
          "from thinksolve_env.games import sample\nfrom .fidelity import _scores\n"
          "x = credit.get('tree').per_group\ny = getattr(estimators.get('grpo'), 'group_local', False)\n")
    assert boundary_violations(ok, "algorithms.lab.probe") == []
