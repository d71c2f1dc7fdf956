"""What import-linter cannot see: a module imported by a name computed at run time. The
kernel and the services import what they use with import statements, so that the
contracts of `make lint` see every dependency; only the registry knows them all."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DYNAMIC = {"import_module", "__import__", "find_spec", "spec_from_file_location"}


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
            if any(n == "importlib" or n.startswith("importlib.") for n in names):
                found.append(f"{path.relative_to(root)}:{node.lineno}: imports importlib")
    return found


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
                      "other = __import__('services.routing')\n")
    lines = hidden_imports(module, tmp_path)
    assert len(lines) == 3 and "import_module" in lines[1] and "__import__" in lines[2]
