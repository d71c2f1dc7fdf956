"""The office directory: every office derived from Cambodia's administrative units,
amended by operators from a CSV file. Amendments are events of the `Directory`
aggregate, so the directory's history replays like a case's. Pure domain: no I/O."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, replace
from functools import cache
from uuid import UUID

from shared.aggregate import Aggregate, event
from shared.offices import KINDS, describe, every_office_id

DIRECTORY_ID = UUID("d10ec702-0000-4000-8000-6f7572566f69")
AMENDABLE = ("kind", "area", "name_en", "name_km", "merged_into", "address", "phone", "email",
             "active")


@dataclass(frozen=True)
class OfficeEntry:
    id: str
    kind: str
    level: str
    area: str
    name_en: str
    name_km: str
    merged_into: str | None = None
    address: str = ""
    phone: str = ""
    email: str = ""
    active: bool = True

    @property
    def province(self) -> str:
        return self.area[:2]

    @property
    def district(self) -> str:
        return self.area[:4] if len(self.area) >= 4 else ""

    def as_dict(self) -> dict:
        return {**asdict(self), "province": self.province or None,
                "district": self.district or None}


def _entry(identifier: str) -> OfficeEntry:
    office = describe(identifier)
    return OfficeEntry(office.id, office.kind, office.level, office.area, office.name_en,
                       office.name_km)


@cache
def base_directory() -> dict[str, OfficeEntry]:
    """Every office the administrative units call for (see offices.every_office_id)."""
    return {identifier: _entry(identifier) for identifier in every_office_id()}


def amended(base: dict[str, OfficeEntry], amendments: dict[str, dict]) -> dict[str, OfficeEntry]:
    """The directory with operators' amendments applied (new offices included)."""
    offices = dict(base)
    for identifier, changes in amendments.items():
        if identifier in offices:
            offices[identifier] = replace(offices[identifier], **changes)
        else:
            level = KINDS.get(changes.get("kind", ""), ("",))[0]
            offices[identifier] = OfficeEntry(
                id=identifier, level=level, **{k: changes.get(k, "") for k in
                                               ("kind", "area", "name_en", "name_km")},
                **{k: changes[k] for k in ("merged_into", "address", "phone", "email", "active")
                   if k in changes})
    return offices


def follow_merges(offices: dict[str, OfficeEntry], identifier: str) -> str:
    """Where cases for an office go now: through any chain of merges (loops stop)."""
    seen = set()
    while identifier in offices and offices[identifier].merged_into and identifier not in seen:
        seen.add(identifier)
        identifier = offices[identifier].merged_into
    return identifier


def read_amendments(text: str, offices: dict[str, OfficeEntry]) -> tuple[dict, list[str]]:
    """Parse an operator's CSV. Returns (office id -> changes, errors with line numbers);
    nothing is to be recorded when there are errors."""
    rows = csv.DictReader(io.StringIO(text))
    if not rows.fieldnames or "office_id" not in rows.fieldnames:
        return {}, ["line 1: the header must have an office_id column"]
    unknown_columns = set(rows.fieldnames) - {"office_id", *AMENDABLE}
    if unknown_columns:
        return {}, [f"line 1: unknown columns {', '.join(sorted(unknown_columns))}"]
    found, errors = {}, []
    for line, row in enumerate(rows, start=2):
        identifier = (row.pop("office_id") or "").strip()
        changes = {k: v.strip() for k, v in row.items() if v is not None and v.strip() != ""}
        if not identifier:
            errors.append(f"line {line}: office_id is empty")
            continue
        if "active" in changes:
            if changes["active"].lower() not in ("yes", "no", "true", "false"):
                errors.append(f"line {line}: active must be yes or no")
                continue
            changes["active"] = changes["active"].lower() in ("yes", "true")
        if identifier not in offices:
            missing = [k for k in ("kind", "name_en", "name_km") if k not in changes]
            if missing or changes.get("kind") not in KINDS:
                errors.append(f"line {line}: a new office needs kind (one of "
                              f"{', '.join(KINDS)}), name_en and name_km")
                continue
        target = changes.get("merged_into")
        if target and target not in offices and target not in found:
            errors.append(f"line {line}: merged_into names no office: {target}")
            continue
        if target == identifier:
            errors.append(f"line {line}: an office cannot be merged into itself")
            continue
        found[identifier] = changes
    return found, errors


class Directory(Aggregate):
    """The operators' amendments to the office directory."""

    @staticmethod
    def create_id() -> UUID:
        return DIRECTORY_ID

    @event("DirectoryOpened")
    def __init__(self, context: dict | None = None) -> None:
        # The directory is about no case: its events' context says nothing (and its
        # first events, recorded before they had one, none at all).
        self.amendments: dict[str, dict] = {}

    @event("OfficeAmended")
    def amend(self, office_id: str, changes: dict, by: str) -> None:
        self.amendments[office_id] = {**self.amendments.get(office_id, {}), **changes}

