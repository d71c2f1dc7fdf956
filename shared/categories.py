"""The service categories, read from the data file operators edit."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

from shared.settings import settings

CASE_TYPES = ("complaint", "support", "information", "evaluation")
LEVELS = ("commune", "district", "province")
# What the public events of a sensitive case say its category is: one bucket for all of
# them, so no subscriber, webhook or report learns which sensitive category it was.
SENSITIVE = "sensitive"
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
    path = settings().categories
    rows = yaml.safe_load(path.read_text(encoding="utf-8"))
    found = {}
    for row in rows:
        category = Category(**{**row, "case_types": tuple(row.get("case_types", CASE_TYPES))})
        if category.level not in LEVELS:
            raise ValueError(f"{path}: category {category.code} has unknown level {category.level}")
        found[category.code] = category
    return found


def is_sensitive(code: str | None) -> bool:
    """Whether a category code (or the public bucket of sensitive cases) is sensitive."""
    if code == SENSITIVE:
        return True
    category = categories().get(code) if code else None
    return category is not None and category.sensitive


def category_of(code: str, level: str | None = None) -> Category:
    """The category a public `CaseSubmitted` names. A sensitive case names only the
    bucket and the level of its ombudsman, which is all routing needs to send it there."""
    if code == SENSITIVE:
        if level not in LEVELS:
            raise ValueError(f"a sensitive case needs the level of its ombudsman, not {level!r}")
        return Category(code=SENSITIVE, name_en="Sensitive case", name_km="ករណីរសើប",
                        level=level, sensitive=True, case_types=CASE_TYPES)
    return categories()[code]
