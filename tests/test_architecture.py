"""The package's shape: three wings whose dependencies point one way, and no import circles.

The inference core (``tcnn.*`` outside ``tcnn.apps`` and ``tcnn.train``) never imports the apps
or the training wing; the training wing never imports the apps; torch is imported only under
``tcnn.train``. Every import counts, also those inside functions, because a lazy import is
still a dependency. The graph is read from the source with :mod:`ast`, so a new circle or a
new wrong-way import fails here with its path.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
#: Modules allowed to reach every wing: the ``python -m tcnn`` entry point.
ENTRY_POINTS = {"tcnn.__main__"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_names(path: Path, name: str) -> set[str]:
    """Every module name ``path`` imports, absolute, at any depth of the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names)
    return out


def import_graph() -> dict[str, set[str]]:
    """tcnn's modules and, for each, the tcnn modules and third-party roots it imports."""
    files = {module_name(p): p for p in SRC.joinpath("tcnn").rglob("*.py")}
    graph = {}
    for name, path in files.items():
        names = imported_names(path, name)
        own = {n for n in names if n in files and n != name}
        other = {n.split(".")[0] for n in names if not n.startswith("tcnn")}
        graph[name] = own | other
    return graph


def wing(name: str) -> str:
    if name.startswith("tcnn.apps"):
        return "apps"
    if name.startswith("tcnn.train"):
        return "train"
    return "core" if name.startswith("tcnn") else "external"


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a path (first module repeated at the end), or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 finished

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt, [*path, nxt])):
                return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start, [start])):
            return found
    return None


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_the_three_wings_exist(graph: dict[str, set[str]]) -> None:
    wings = {wing(name) for name in graph}
    assert {"core", "apps", "train"} <= wings
    for core in ("tcnn.predictor", "tcnn.registry", "tcnn.codec", "tcnn.card", "tcnn.files"):
        assert core in graph, core


def test_no_import_circles(graph: dict[str, set[str]]) -> None:
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_dependencies_point_one_way(graph: dict[str, set[str]]) -> None:
    allowed = {"core": {"core"}, "train": {"core", "train"}, "apps": {"core", "train", "apps"}}
    wrong = [
        f"{name} ({wing(name)}) imports {dep} ({wing(dep)})"
        for name, deps in sorted(graph.items())
        if name not in ENTRY_POINTS
        for dep in sorted(deps)
        if wing(dep) != "external" and wing(dep) not in allowed[wing(name)]
    ]
    assert not wrong, "\n".join(wrong)


def test_torch_only_in_the_training_wing(graph: dict[str, set[str]]) -> None:
    users = sorted(name for name, deps in graph.items() if "torch" in deps)
    assert users, "the training wing imports torch somewhere"
    assert [name for name in users if wing(name) != "train"] == []


def test_the_checks_catch_a_circle_and_a_wrong_way_import() -> None:
    # The checks themselves, on a made-up graph: they must be able to fail.
    graph = {"tcnn.a": {"tcnn.b"}, "tcnn.b": {"tcnn.train.c"}, "tcnn.train.c": {"tcnn.a"}}
    assert find_cycle(graph) == ["tcnn.a", "tcnn.b", "tcnn.train.c", "tcnn.a"]
    assert wing("tcnn.b") == "core" and wing("tcnn.train.c") == "train"
