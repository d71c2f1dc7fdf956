"""Standard replies offices send citizens, from the data file operators edit: a question
or a resolution, each in Khmer and English. Reads only the file OURVOICE_REPLY_TEMPLATES
names."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import yaml

from shared.settings import settings

KINDS = ("question", "resolution")
LANGUAGES = ("km", "en")


@dataclass(frozen=True)
class ReplyTemplate:
    id: str
    kind: str
    title: dict[str, str]
    text: dict[str, str]

    def text_in(self, language: str | None) -> str:
        """The text in the case's language; Khmer, the country's, when it is unknown."""
        return self.text[language if language in LANGUAGES else "km"]


def read_templates(rows: list) -> dict[str, ReplyTemplate]:
    """The templates of a parsed file; ValueError naming the entry that is wrong."""
    found: dict[str, ReplyTemplate] = {}
    for number, row in enumerate(rows or [], start=1):
        where = f"reply template {number} ({row.get('id', 'no id') if isinstance(row, dict) else row})"
        if not isinstance(row, dict) or not isinstance(row.get("id"), str) or not row["id"]:
            raise ValueError(f"{where}: needs an id")
        if row.get("kind") not in KINDS:
            raise ValueError(f"{where}: kind must be one of {', '.join(KINDS)}")
        for part in ("title", "text"):
            words = row.get(part)
            if not isinstance(words, dict) or any(
                    not isinstance(words.get(lang), str) or not words[lang].strip()
                    for lang in LANGUAGES):
                raise ValueError(f"{where}: {part} needs both km and en")
        if row["id"] in found:
            raise ValueError(f"{where}: the id is used twice")
        found[row["id"]] = ReplyTemplate(
            id=row["id"], kind=row["kind"],
            title={lang: row["title"][lang].strip() for lang in LANGUAGES},
            text={lang: row["text"][lang].strip() for lang in LANGUAGES})
    return found


@cache
def templates() -> dict[str, ReplyTemplate]:
    path = settings().reply_templates
    return read_templates(yaml.safe_load(path.read_text(encoding="utf-8")))
