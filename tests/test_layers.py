"""The package's layers: every module of mmattn/ imports only from its own layer or the
layers below it, and no modules import each other in a circle.

The order, lowest first (training, teach and scale are side by side and independent of each other)::

    io < nn < scenes < models < api < backends < {training, teach, scale} < demo < cli

Every ``import``/``from ... import`` anywhere in a module counts (at the top, inside a
function, under ``TYPE_CHECKING``), read with ``ast`` from the source, so a late import
cannot hide an upward dependency. A plug-in loaded by name at run time (the backend
registry's ``"module:Class"`` strings) is not an import and is not counted.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mmattn"
#: each layer's rank; a module may import a layer of lower or equal rank (equal: its own layer only)
RANKS = {"io": 0, "nn": 1, "scenes": 2, "models": 3, "api": 4, "backends": 5, "training": 6, "teach": 6, "scale": 6, "demo": 7, "cli": 8}
TOP = {"mmattn", "mmattn.__main__"}  #: the package's own face: may import any layer


def module_name(file: Path) -> str:
    parts = file.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(f): f for f in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str, file: Path, known: set[str]) -> set[str]:
    """The mmattn modules that ``file`` imports (a ``from package import name`` of a
    submodule counts as that submodule)."""
    tree = ast.parse(file.read_text(encoding="utf-8"), str(file))
    package = name if file.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # `from package import submodule` imports that submodule; `from module import name`, that module
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod for a in node.names]
        else:
            continue
        for t in targets:
            if t.split(".")[0] != "mmattn":
                continue
            while t not in known and "." in t:  # mmattn.api.grounder.Grounder -> mmattn.api.grounder
                t = t.rpartition(".")[0]
            if t in known and t != name:
                out.add(t)
    return out


def layer(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in RANKS else None


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(name, file, set(mods)) for name, file in mods.items()}


def test_every_module_is_in_a_layer():
    loose = [m for m in modules() if m not in TOP and layer(m) is None]
    assert not loose, f"modules outside every layer: {loose} (put them in one of {sorted(RANKS)})"


def test_no_module_imports_from_a_layer_above_it():
    bad = []
    for name, deps in graph().items():
        if name in TOP:
            continue
        mine = layer(name)
        for d in sorted(deps):
            theirs = layer(d)
            if theirs is None:  # the package's face (mmattn) from inside a layer
                bad.append(f"{name} imports {d} (the package's top level: import the module it comes from)")
            elif RANKS[theirs] > RANKS[mine] or (RANKS[theirs] == RANKS[mine] and theirs != mine):
                bad.append(f"{name} ({mine}) imports {d} ({theirs})")
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_no_import_cycles():
    g = graph()
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for d in sorted(g[node]):
            if state.get(d) == 1:
                cycles.append(" -> ".join(path[path.index(d):] + [node, d]) if d in path else f"{node} -> {d}")
            elif d not in state:
                visit(d, path + [node])
        state[node] = 2

    for n in sorted(g):
        if n not in state:
            visit(n, [])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


@pytest.mark.parametrize(("source", "expected"), [
    ("from mmattn.backends.shapes import vocabulary\n", {"mmattn.backends.shapes.vocabulary"}),
    ("def f():\n    from mmattn.teach.views import ground_view\n", {"mmattn.teach.views"}),
    ("from ..models import tokenizer\n", {"mmattn.models.tokenizer"}),
    ("import mmattn.io.files as f\n", {"mmattn.io.files"}),
    ("REGISTRY = {'clip': 'mmattn.backends.clip.grounder:ClipGrounder'}\n", set()),
])  # fmt: skip
def test_the_checker_sees_every_kind_of_import(tmp_path, source, expected):
    """The checker itself: late, relative, aliased and submodule imports are found; a module
    named in a string is not an import."""
    file = tmp_path / "mmattn" / "api" / "probe.py"
    file.parent.mkdir(parents=True)
    file.write_text(source)
    known = set(modules())
    assert imports("mmattn.api.probe", file, known) == expected
