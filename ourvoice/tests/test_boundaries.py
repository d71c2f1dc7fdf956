"""What import-linter cannot see: a module imported by a name computed at run time. The
kernel and the services import what they use with import statements, so that the
contracts of `make lint` see every dependency; only the registry knows them all."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Every way a module can run another by a name or a text made at run time: importlib's,
# runpy's, and code given to exec or eval as a string.
DYNAMIC = {"import_module", "__import__", "find_spec", "spec_from_file_location",
           "run_module", "run_path", "exec", "eval"}


def hidden_imports(path: Path, root: Path = ROOT) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else \
                node.func.id if isinstance(node.func, ast.Name) else None
            if name in DYNAMIC:
                found.append(f"{path.relative_to(root)}:{node.lineno}: {name}(...)")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [alias.name for alias in node.names]
            if any(n.split(".")[0] in ("importlib", "runpy") for n in names):
                found.append(f"{path.relative_to(root)}:{node.lineno}: imports {names[0]}")
    return sorted(found, key=lambda line: int(line.split(":")[1]))


@pytest.mark.parametrize("package", ["shared", "services"])
def test_no_module_is_imported_by_a_computed_name(package):
    found = [line for path in sorted((ROOT / package).rglob("*.py"))
             if "tests" not in path.relative_to(ROOT).parts
             for line in hidden_imports(path)]
    assert found == []


def test_the_check_sees_an_import_module_call(tmp_path):
    module = tmp_path / "sly.py"
    module.write_text("import importlib\n"
                      "service = importlib.import_module('services.' + 'intake')\n"
                      "other = __import__('services.routing')\n"
                      "import runpy\n"
                      "runpy.run_module('services.notifications')\n"
                      "exec('import services.reporting')\n")
    lines = hidden_imports(module, tmp_path)
    assert len(lines) == 6
    assert ["import_module" in lines[1], "__import__" in lines[2], "runpy" in lines[3],
            "run_module" in lines[4], "exec" in lines[5]] == [True] * 5


def import_cycles(graph, modules: set[str]) -> list[list[str]]:
    """The groups of modules that import each other, directly or through others (the
    strongly connected parts of the import graph, Tarjan's algorithm without recursion)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []
    for root in sorted(modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph(root) & modules)))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            module, imported = work[-1]
            for other in imported:
                if other not in index:
                    index[other] = low[other] = len(index)
                    stack.append(other)
                    on_stack.add(other)
                    work.append((other, iter(sorted(graph(other) & modules))))
                    break
                if other in on_stack:
                    low[module] = min(low[module], index[other])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[module])
                if low[module] == index[module]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == module:
                            break
                    if len(group) > 1:
                        cycles.append(sorted(group))
    return cycles


def test_no_modules_import_each_other():
    """A cycle means two modules are one that pretends to be two: neither can be read,
    tested or moved without the other."""
    import grimp

    graph = grimp.build_graph("ourvoice", "services", "shared")
    modules = {m for m in graph.modules if ".tests" not in m}
    assert import_cycles(graph.find_modules_directly_imported_by, modules) == []


def test_the_cycle_check_finds_a_cycle_through_three_modules():
    imports = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert import_cycles(lambda m: imports[m], set(imports)) == [["a", "b", "c"]]
