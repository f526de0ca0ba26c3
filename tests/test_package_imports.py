"""The package's import graph, read from the source (imports inside functions included): no circle
among the modules of ``mtm``, and an import of a package module inside a function only where it
avoids loading a heavy optional dependency, with a comment saying so."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mtm"


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    return modules


def _graph(modules: dict[str, Path]) -> tuple[dict[str, set[str]], list[tuple[str, int, str]]]:
    """{module: the package modules it imports}, and (module, line, source line) of every import of a
    package module inside a function."""
    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph, inner = {m: set() for m in modules}, []
    for module, path in modules.items():
        source = path.read_text()
        tree = ast.parse(source)
        for function in [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]:
            for node in ast.walk(function):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    node.inside_function = True
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                targets = [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            found = {resolve(t) for t in targets if t.startswith("mtm")} - {None, module}
            graph[module] |= found
            if found and getattr(node, "inside_function", False):
                inner.append((module, node.lineno, source.splitlines()[node.lineno - 1]))
    return graph, inner


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_circle_among_the_package_modules():
    graph, _ = _graph(_modules())
    assert "mtm.train" in graph["mtm.cli"] and "mtm.checkpoint" in graph["mtm.train"]  # the graph is read
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_package_imports_inside_functions_say_why():
    _, inner = _graph(_modules())
    unexplained = [f"{module}:{line}: {text.strip()}" for module, line, text in inner if "#" not in text]
    assert unexplained == []
