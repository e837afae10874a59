"""The house's layering, checked from the source: lower packages never import higher ones.

Ranks (docs/design.md draws the same picture): a package may import packages of its own rank or lower.
Between packages there is no import circle, except the one between ``autograd`` and ``ops`` (a Tensor's
operators call ops, and ops build Tensors). Imports inside functions are rare, and each carries a comment
on its line saying why.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "shendu"

RANKS: dict[str, int] = {
    "backend": 0, "naming": 0, "rng": 0, "version": 0, "kernels": 0,
    "autograd": 1, "ops": 1,
    "creation": 2, "random": 2, "functional": 2, "testing": 2, "initializers": 2, "activations": 2, "regularizers": 2,
    "utils": 2, "data": 2, "datasets": 2, "reference": 2,
    # distribute sits low so that data (DataLoader's shard option), layers (synchronised BatchNormalization),
    # callbacks (rank 0 writes) and models (fit) reach the ranks through it; it needs only autograd/ops/utils
    "distribute": 2,
    "layers": 3,
    "losses": 4, "metrics": 4, "optimizers": 4,
    "saving": 5, "interop": 5, "export": 5,
    "callbacks": 6,
    "models": 7,
    "shendu": 99,  # the top-level __init__ re-exports everything
}
ALLOWED_CIRCLES = [{"autograd", "ops"}]
#: module names written as strings (for importlib) that point up the house, each with its reason
ALLOWED_UPWARD_BY_NAME = {
    ("saving", "models"): "a file names Sequential/Model; a fresh `from shendu.saving import load_model` imports "
                          "the module that registers them, as Keras's deserialiser imports the module a config names",
}
MAX_FUNCTION_LEVEL_IMPORTS = 12


def package_of(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return "shendu" if parts == ("__init__",) else parts[0]


def imported_packages(node: ast.AST, path: Path) -> list[str]:
    """The shendu packages that an import statement names (``from shendu import a, b`` names a and b)."""
    if isinstance(node, ast.Import):  # `import shendu` alone names the top-level package
        return [a.name.split(".")[1] if "." in a.name else "shendu" for a in node.names
                if a.name == "shendu" or a.name.startswith("shendu.")]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:  # relative import: resolve against the file's package
        base = list(path.relative_to(SRC).parent.parts)[: len(path.relative_to(SRC).parent.parts) - node.level + 1]
        module = ".".join(["shendu", *base, *(node.module.split(".") if node.module else [])])
    else:
        module = node.module or ""
    if module == "shendu":
        return [a.name for a in node.names if a.name in RANKS]
    if module.startswith("shendu."):
        return [module.split(".")[1]]
    return []


def collect() -> tuple[list[tuple[str, str, str]], list[str], list[str]]:
    """(importer, imported, where) edges; function-level imports; those of them lacking a comment."""
    edges, function_level, uncommented = [], [], []
    for path in sorted(SRC.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        tree = ast.parse(source)
        importer = package_of(path)
        in_function: set[int] = set()
        for fn in ast.walk(tree):
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                in_function.update(id(n) for n in ast.walk(fn) if n is not fn)
        for node in ast.walk(tree):
            for imported in imported_packages(node, path):
                where = f"{path.relative_to(SRC.parent)}:{node.lineno}"
                edges.append((importer, imported, where))
                if id(node) in in_function and where not in function_level:
                    function_level.append(where)
                    if "#" not in lines[node.lineno - 1]:
                        uncommented.append(f"{where}: {lines[node.lineno - 1].strip()}")
    return edges, function_level, uncommented


EDGES, FUNCTION_LEVEL, UNCOMMENTED = collect()


def test_every_package_has_a_rank():
    unknown = {p for edge in EDGES for p in edge[:2]} - RANKS.keys()
    on_disk = {package_of(p) for p in SRC.rglob("*.py")} - RANKS.keys()
    assert not unknown | on_disk, f"give these packages a rank in tests/test_layering.py and docs/design.md: " \
                                  f"{sorted(unknown | on_disk)}"


def test_no_lower_package_imports_a_higher_one():
    upward = [f"{where}: {a} (rank {RANKS[a]}) imports {b} (rank {RANKS[b]})"
              for a, b, where in EDGES if RANKS.get(b, 0) > RANKS.get(a, 0)]
    assert not upward, "imports that point up the house:\n" + "\n".join(upward)


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm over the package graph, iterative."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                components.append(component)
    return components


def test_no_import_circle_between_packages():
    graph: dict[str, set[str]] = {}
    for a, b, _ in EDGES:
        graph.setdefault(a, set())
        graph.setdefault(b, set())
        if a != b:
            graph[a].add(b)
    circles = [c for c in strongly_connected(graph) if len(c) > 1 and c not in ALLOWED_CIRCLES]
    detail = [sorted(c) for c in circles]
    assert not circles, f"import circles between packages: {detail}"


def test_function_level_imports_are_rare_and_explained():
    assert not UNCOMMENTED, "function-level imports need a comment saying why:\n" + "\n".join(UNCOMMENTED)
    assert len(FUNCTION_LEVEL) <= MAX_FUNCTION_LEVEL_IMPORTS, \
        f"{len(FUNCTION_LEVEL)} function-level imports (at most {MAX_FUNCTION_LEVEL_IMPORTS}):\n" + \
        "\n".join(FUNCTION_LEVEL)


def test_modules_named_in_strings_do_not_point_up():
    """``importlib.import_module("shendu.models")`` would hide an import from the checks above: every string
    that names a higher package must be a listed, explained exception."""
    hidden = []
    for path in sorted(SRC.rglob("*.py")):
        importer = package_of(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                    re.fullmatch(r"shendu(\.\w+)+", node.value):
                named = node.value.split(".")[1]
                if RANKS.get(named, 0) > RANKS[importer] and (importer, named) not in ALLOWED_UPWARD_BY_NAME:
                    hidden.append(f"{path.relative_to(SRC.parent)}:{node.lineno}: {node.value!r}")
    assert not hidden, "module names in strings that point up the house:\n" + "\n".join(hidden)


def test_strongly_connected_finds_a_planted_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert {"a", "b", "c"} in strongly_connected(graph)
    assert {"d"} in strongly_connected(graph)


@pytest.mark.parametrize("source, expected", [
    ("from shendu import ops, losses", ["ops", "losses"]),
    ("import shendu.layers.core", ["layers"]),
    ("from shendu.models.model import Model", ["models"]),
    ("import numpy as np", []),
    ("import shendu", ["shendu"]),
])
def test_import_parsing(source, expected):
    node = ast.parse(source).body[0]
    assert imported_packages(node, SRC / "metrics.py") == expected
