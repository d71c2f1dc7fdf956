"""The README's map of folders and files ("Where things are") names only what exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PATH = re.compile(r"^[\w./-]+$")


def named_paths(readme: str) -> list[str]:
    """Every path the map names: a folder of the first column, and each file or folder
    of the second, relative to its row's folder."""
    section = readme.split("### Where things are", 1)[1].split("\n#", 1)[0]
    found = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 2 or not cells[0].startswith("`"):
            continue
        folder = cells[0].strip("`")
        found.append(folder)
        for name in re.findall(r"`([^`]+)`", cells[1]):
            if PATH.match(name) and (name.endswith("/") or "." in name):
                found.append(folder + name)
    return found


def test_the_map_is_read():
    paths = named_paths((ROOT / "README.md").read_text(encoding="utf-8"))
    assert "ourvoice/" in paths and "shared/store.py" in paths and "tests/receivers.py" in paths


def test_every_path_the_map_names_exists():
    paths = named_paths((ROOT / "README.md").read_text(encoding="utf-8"))
    assert [path for path in paths if not (ROOT / path).exists()] == []


def test_the_map_names_every_module_of_the_three_layers():
    """Each module of ourvoice/, services/ and shared/ (tests and packages' __init__ and
    __main__ aside) is named in its folder's row, so the map is a map of the tree."""
    named = set(named_paths((ROOT / "README.md").read_text(encoding="utf-8")))
    modules = [str(path.relative_to(ROOT))
               for layer in ("ourvoice", "services", "shared")
               for path in sorted((ROOT / layer).rglob("*.py"))
               if "tests" not in path.relative_to(ROOT).parts
               and path.name not in ("__init__.py", "__main__.py")]
    assert modules and [module for module in modules if module not in named] == []
