"""The package's imports run one way: no circle between modules, and no module reaches into
another's private (``_name``) definitions. Read from the source with ``ast``, every import
counted (a function-level or ``if __name__`` import is an edge like any other)."""

from __future__ import annotations

import ast
from pathlib import Path

import searchrel

PACKAGE = Path(searchrel.__file__).resolve().parent


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def owner(name: str, known: dict[str, Path]) -> str | None:
    """The module ``name`` lives in (``a.b.c`` may be a function ``c`` of module ``a.b``)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imports(module: str, path: Path, known: dict[str, Path]) -> list[tuple[str, str | None]]:
    """(imported module, imported name or None) for every searchrel import in ``module``."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(a.name, None) for a in node.names if a.name.split(".")[0] == "searchrel"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            if base.split(".")[0] == "searchrel":
                found += [(base, a.name) for a in node.names]
    return found


def import_graph() -> tuple[dict[str, set[str]], list[str]]:
    """Edges module -> modules it imports, and every import of another module's private name."""
    known = modules()
    edges: dict[str, set[str]] = {name: set() for name in known}
    private = []
    for module, path in known.items():
        for base, name in imports(module, path, known):
            target = f"{base}.{name}" if name and f"{base}.{name}" in known else base
            dest = owner(target, known)
            if dest is None or dest == module:
                continue
            edges[module].add(dest)
            if name and target == base and name.startswith("_") and not name.startswith("__"):
                private.append(f"{module} imports {base}.{name}")
    return edges, private


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
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
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_the_imports_it_must() -> None:
    """A check that the reader works: known edges of the package are found."""
    edges, _ = import_graph()
    assert "searchrel.config" in edges["searchrel.cli"]
    assert "searchrel.labeling.labeler" in edges["searchrel.labeling.judge"]
    assert "searchrel.components" in edges["searchrel.pipelines.relevance_loop"]


def test_no_module_imports_one_that_imports_it_back() -> None:
    edges, _ = import_graph()
    assert cycles(edges) == []


def test_a_circle_is_found_where_there_is_one() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_another_modules_private_names() -> None:
    _, private = import_graph()
    assert private == []


def test_the_cli_is_imported_by_nothing_but_the_entry_point() -> None:
    edges, _ = import_graph()
    importers = sorted(m for m, targets in edges.items() if "searchrel.cli" in targets)
    assert importers == ["searchrel.__main__"]
