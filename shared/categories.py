"""The service categories, read from the data file operators edit."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

from shared.events import CASE_TYPES

LEVELS = ("commune", "district", "province")
DEFAULT_FILE = Path(__file__).parent / "data" / "categories.yaml"


@dataclass(frozen=True)
class Category:
    code: str
    name_en: str
    name_km: str
    level: str
    sensitive: bool = False
    case_types: tuple[str, ...] = field(default=CASE_TYPES)


@cache
def categories() -> dict[str, Category]:
    path = Path(os.environ.get("OURVOICE_CATEGORIES", DEFAULT_FILE))
    rows = yaml.safe_load(path.read_text(encoding="utf-8"))
    found = {}
    for row in rows:
        category = Category(**{**row, "case_types": tuple(row.get("case_types", CASE_TYPES))})
        if category.level not in LEVELS:
            raise ValueError(f"{path}: category {category.code} has unknown level {category.level}")
        found[category.code] = category
    return found
