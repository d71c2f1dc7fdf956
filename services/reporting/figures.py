"""The figures offices and the public see, and why no count of 1 to 4 cases can be read
or worked out from them. Pure: the facts come in, the published report goes out.

A public caller asks for one calendar month and at most one of a province, a district or
an office. Months never overlap, so no two windows can be subtracted; what remains is
subtraction inside one month: a province less its districts, a district less the
offices its cases are at, a total less its parts, one office's figures against another's.
So every figure any such query of a month can show is a cell of one table of that month
(keyed by area, office, section and value), every such subtraction is a `Sum` over its
cells, and suppression (disclosure.py) is decided once over the whole table: each query
reads its figures from the same decision, so no two answers together give away what
either hides.

The table is decided in two passes. Facts fixed when a case is submitted (where, what,
type, category, channel, gender, the office it was first routed to) are decided first,
alone, so that what they show and hide never changes as cases move on; the facts that
change (status, deadlines, feedback, escalations, times) are decided next, around them.
Two readings of a month therefore never differ in what they reveal about who was counted.

Sensitive categories are counted under one category, `sensitive`, never by their own."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from services.reporting.disclosure import SMALL, Sum, hidden_cells
from shared.events import CHANNELS

SENSITIVE = "sensitive"
CASES = "cases"
GENDERS = ("female", "male", "other", "undisclosed")
# Sections whose values add up to the cases counted.
DIMENSIONS = ("type", "category", "channel", "status", "gender")
# Sections with a total of their own (value "") beside their parts.
OWN_TOTALS = ("escalations", "feedback")
# Sections whose figures a case keeps from its submission on.
SETTLED = (CASES, "type", "category", "channel", "gender", "evaluations")
DEADLINES = ("acknowledged_on_time", "acknowledged_late", "resolved_on_time", "resolved_late")
ALL = ""  # every area, or every office


class Hidden:
    """A figure held back: null in JSON, "suppressed" in CSV. It says nothing of the
    value, which may be under five or be held back so that one that is stays unknown."""

    def __repr__(self) -> str:
        return "HIDDEN"


HIDDEN = Hidden()


@dataclass(frozen=True)
class Fact:
    """n cases (or deadlines, responses, escalations) of one district and office."""

    district: str
    office: str
    section: str
    value: str = ""
    n: int = 1
    measure: float | None = None  # a rating, or seconds to acknowledge or resolve


@dataclass
class Table:
    counts: dict = field(default_factory=dict)
    measures: dict = field(default_factory=dict)
    hidden: set = field(default_factory=set)


def _areas(district: str) -> tuple[str, ...]:
    return (district, district[:2], ALL)


def _keys(fact: Fact) -> Iterable[tuple]:
    for area in _areas(fact.district):
        yield (area, ALL, fact.section, fact.value)
    yield (ALL, fact.office, fact.section, fact.value)
    if fact.section == CASES:  # where a place's cases are: by_office beside by_district
        yield (fact.district, fact.office, CASES, "")
        yield (fact.district[:2], fact.office, CASES, "")


def sums_of(counts: dict) -> list[Sum]:
    """Every subtraction the published figures allow, as sums over the table's keys."""
    # One sum per total and way of cutting it: by area, by office, by each section.
    parts: dict[tuple, set] = {}

    def tie(total, way, part):
        parts.setdefault((total, way), set()).add(part)

    for area, office, section, value in counts:
        key = (area, office, section, value)
        if len(area) == 4 and (office == ALL or section == CASES):
            tie((area[:2], office, section, value), "area", key)
        elif len(area) == 2 and (office == ALL or section == CASES):
            tie((ALL, office, section, value), "area", key)
        if office != ALL and (area == ALL or section == CASES):
            tie((area, ALL, section, value), "office", key)
        if section in DIMENSIONS and (area == ALL or office == ALL):
            tie((area, office, CASES, ""), section, key)
        elif section in OWN_TOTALS and value and (area == ALL or office == ALL):
            tie((area, office, section, ""), section, key)
    return [Sum(total, tuple(sorted(p, key=repr))) for (total, _), p in
            sorted(parts.items(), key=lambda item: repr(item[0]))]


def table(facts: Iterable[Fact], *, suppress: bool = True) -> Table:
    """The month's table, with its hidden cells decided (unless it is for auditors)."""
    found = Table()
    for fact in facts:
        for key in dict.fromkeys(_keys(fact)):
            found.counts[key] = found.counts.get(key, 0) + fact.n
            if fact.measure is not None:
                found.measures.setdefault(key, []).extend([fact.measure] * fact.n)
    if not suppress:
        return found
    sums = sums_of(found.counts)
    settled_keys = {k for k in found.counts if k[2] in SETTLED}
    first = hidden_cells({k: v for k, v in found.counts.items() if k in settled_keys},
                         [s for s in sums if set(s.members()) <= settled_keys])
    found.hidden = hidden_cells(found.counts, sums, settled=first, fixed=settled_keys)
    return found


def _percentile(values: list[float], share: float) -> float:
    """As PostgreSQL's percentile_cont: linear between the two nearest."""
    ordered = sorted(values)
    at = share * (len(ordered) - 1)
    low = int(at)
    high = min(low + 1, len(ordered) - 1)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (at - low), 3)


class Reader:
    """The figures of one scope (an area, or an office) read from a decided table."""

    def __init__(self, decided: Table, area: str = ALL, office: str = ALL, *,
                 whole: bool = False):
        # `whole`: for auditors, who check the figures: nothing hidden, every share and
        # measure that has something to be computed from.
        self.table, self.area, self.office, self.whole = decided, area, office, whole
        self.base = 1 if whole else SMALL

    def cell(self, section: str, value: str = "", area: str | None = None,
             office: str | None = None) -> int | Hidden:
        key = (self.area if area is None else area, self.office if office is None else office,
               section, value)
        if key in self.table.hidden and not self.whole:
            return HIDDEN
        return self.table.counts.get(key, 0)

    def values(self, section: str) -> dict:
        found = sorted({k[3] for k in self.table.counts
                        if k[:3] == (self.area, self.office, section) and k[3]})
        return {value: self.cell(section, value) for value in found}

    def channels(self) -> dict:
        """Every way in, none left out for having no case (a zero gives nothing away),
        each held back like any other cell."""
        return {**{channel: self.cell("channel", channel) for channel in CHANNELS},
                **self.values("channel")}

    def _shown_base(self, section: str) -> bool:
        base = self.cell(section)
        return base is not HIDDEN and base >= self.base

    def measure(self, section: str, how) -> float | Hidden | None:
        """A mean or a percentile, shown only beside a shown count of at least five: its
        count then has the same cells hidden as the count does, so no sum of hidden
        ratings or times can be worked out either."""
        values = self.table.measures.get((self.area, self.office, section, ""))
        if not values:
            return None
        return how(values) if self._shown_base(section) else HIDDEN

    def share(self, part: str, rest: str) -> float | Hidden | None:
        """part / (part + rest), shown only when both are (else it would give the hidden
        one away) and rest on at least five."""
        shown, other = self.cell(part), self.cell(rest)
        if shown is HIDDEN or other is HIDDEN or shown + other < self.base:
            return None if shown == other == 0 else HIDDEN
        return round(shown / (shown + other), 4)

    def places(self, level: int) -> dict:
        found = sorted({k[0] for k in self.table.counts if len(k[0]) == level
                        and k[0].startswith(self.area[:level]) and k[2] == CASES
                        and k[1] == self.office})
        return {area: self.cell(CASES, area=area) for area in found}

    def report(self, month: str) -> dict:
        total = self.cell(CASES)
        offices = {self.office: total} if self.office else {
            k[1]: self.cell(CASES, office=k[1]) for k in sorted(self.table.counts)
            if k[0] == self.area and k[1] and k[2] == CASES}
        deadlines = {name: self.cell(name) for name in DEADLINES}
        for done in ("acknowledged", "resolved"):
            deadlines[f"{done}_on_time_share"] = self.share(f"{done}_on_time", f"{done}_late")
        mean = lambda values: round(sum(values) / len(values), 3)  # noqa: E731
        return {
            "total": total,
            "by_type": self.values("type"), "by_category": self.values("category"),
            "by_channel": self.channels(), "by_status": self.values("status"),
            "by_province": self.places(2), "by_district": self.places(4),
            "by_office": offices, "by_period": {month: total},
            "gender": {"totals": {g: self.cell("gender", g) for g in GENDERS}},
            "deadlines": deadlines,
            "time_to_acknowledge": self.times("acknowledged"),
            "time_to_resolve": self.times("resolved"),
            "satisfaction": {"responses": self.cell("feedback"),
                             "satisfied": self.cell("feedback", "satisfied"),
                             "satisfied_share": self._satisfied_share(),
                             "mean_rating": self.measure("feedback", mean)},
            "evaluations": {"evaluations": self.cell("evaluations"),
                            "mean_rating": self.measure("evaluations", mean)},
            "escalations": {"total": self.cell("escalations"),
                            "by_reason": self.values("escalations")},
        }

    def scorecard(self) -> dict:
        """What a ministry official compares across offices and districts: deadlines met,
        the median times to acknowledge and to resolve, the citizens' satisfaction."""
        figures = self.report("")
        card = {"cases": figures["total"], **figures["deadlines"],
                "on_time_share": self._on_time_share(),
                "median_acknowledge_seconds": figures["time_to_acknowledge"]["median_seconds"],
                "median_resolve_seconds": figures["time_to_resolve"]["median_seconds"],
                "responses": figures["satisfaction"]["responses"],
                "satisfied_share": figures["satisfaction"]["satisfied_share"]}
        return card

    def _on_time_share(self) -> float | Hidden | None:
        """Every deadline met of every deadline decided, from the four counts shown."""
        cells = [self.cell(name) for name in DEADLINES]
        if any(c is HIDDEN for c in cells):
            return HIDDEN
        decided = sum(cells)
        if decided < self.base:
            return None if decided == 0 else HIDDEN
        return round((cells[0] + cells[2]) / decided, 4)

    def times(self, section: str) -> dict:
        return {"cases": self.cell(section),
                "median_seconds": self.measure(section, lambda v: _percentile(v, 0.5)),
                "p90_seconds": self.measure(section, lambda v: _percentile(v, 0.9))}

    def _satisfied_share(self) -> float | Hidden | None:
        responses, satisfied = self.cell("feedback"), self.cell("feedback", "satisfied")
        if responses is HIDDEN or satisfied is HIDDEN or responses < self.base:
            return None if responses == 0 else HIDDEN
        return round(satisfied / responses, 4)
