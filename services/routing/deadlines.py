"""Deadline arithmetic: SLA policies and the two calendars. Pure functions, no I/O.

`working-days` counts only office hours, Monday to Friday in Asia/Phnom_Penh, minus
Cambodia's public holidays; a day in a policy is one full office day. `24x7` counts
every second."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import holidays

PHNOM_PENH = ZoneInfo("Asia/Phnom_Penh")
DEFAULT_OFFICE_HOURS = ((time(8, 0), time(12, 0)), (time(14, 0), time(17, 0)))

_DURATION = re.compile(
    r"^P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


@dataclass(frozen=True)
class Duration:
    """An ISO 8601 duration as policies write it (PnW, PnD, PTnH, PTnM, PTnS)."""

    days: int = 0
    seconds: float = 0.0

    @classmethod
    def parse(cls, text: str) -> Duration:
        match = _DURATION.match(text or "")
        if not match or text in ("P", "PT") or text.endswith("T"):
            raise ValueError(f"not an ISO 8601 duration such as P2D or PT4H: {text!r}")
        parts = {k: float(v) if v else 0 for k, v in match.groupdict().items()}
        return cls(days=int(parts["weeks"] * 7 + parts["days"]),
                   seconds=parts["hours"] * 3600 + parts["minutes"] * 60 + parts["seconds"])

    def scaled(self, fraction: float) -> Duration:
        """A fraction of this duration (for warnings), in the same calendar's units."""
        whole_days = self.days * fraction
        return Duration(days=int(whole_days), seconds=self.seconds * fraction
                        + (whole_days - int(whole_days)) * 86400)


class Calendar:
    name: str

    def add(self, start: datetime, duration: Duration) -> datetime:
        raise NotImplementedError

    def elapsed(self, start: datetime, end: datetime) -> float:
        """Counted seconds between two instants."""
        raise NotImplementedError


class RoundTheClock(Calendar):
    name = "24x7"

    def add(self, start: datetime, duration: Duration) -> datetime:
        return start + timedelta(days=duration.days, seconds=duration.seconds)

    def elapsed(self, start: datetime, end: datetime) -> float:
        return max(0.0, (end - start).total_seconds())


@cache
def _cambodian_holidays(year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays("KH", years=[year]))


def is_holiday(day: date) -> bool:
    return day in _cambodian_holidays(day.year)


@dataclass(frozen=True)
class WorkingDays(Calendar):
    office_hours: tuple[tuple[time, time], ...] = DEFAULT_OFFICE_HOURS
    name: str = field(default="working-days", init=False)

    @property
    def day_seconds(self) -> float:
        return sum((datetime.combine(date.min, b) - datetime.combine(date.min, a)).total_seconds()
                   for a, b in self.office_hours)

    def is_working_day(self, day: date) -> bool:
        return day.weekday() < 5 and not is_holiday(day)

    def _intervals(self, start: datetime):
        """Office-hour intervals (local time) from the one containing `start` onwards."""
        local = start.astimezone(PHNOM_PENH)
        day = local.date()
        while True:
            if self.is_working_day(day):
                for opens, closes in self.office_hours:
                    begin = datetime.combine(day, opens, PHNOM_PENH)
                    end = datetime.combine(day, closes, PHNOM_PENH)
                    if end > local:
                        yield max(begin, local), end
            day += timedelta(days=1)

    def add(self, start: datetime, duration: Duration) -> datetime:
        remaining = duration.days * self.day_seconds + duration.seconds
        for begin, end in self._intervals(start):
            available = (end - begin).total_seconds()
            if remaining <= available:
                return (begin + timedelta(seconds=remaining)).astimezone(UTC)
            remaining -= available
        raise AssertionError("unreachable: office hours never end")

    def elapsed(self, start: datetime, end: datetime) -> float:
        counted = 0.0
        if end <= start:
            return counted
        for begin, close in self._intervals(start):
            if begin >= end:
                break
            counted += (min(close, end) - begin).total_seconds()
        return counted


CALENDARS = {"24x7": RoundTheClock(), "working-days": WorkingDays()}


@dataclass(frozen=True)
class Policy:
    """How long an office has for a case, and when it is warned."""

    acknowledge: Duration
    resolve: Duration
    warn_at: float  # fraction of each duration after which a warning is recorded
    calendar: Calendar

    def due(self, start: datetime, deadline: str) -> datetime:
        return self.calendar.add(start, getattr(self, deadline))

    def warning(self, start: datetime, deadline: str) -> datetime:
        return self.calendar.add(start, getattr(self, deadline).scaled(self.warn_at))


@dataclass(frozen=True)
class Policies:
    """Policies by case type and category; the most specific match wins. Ombudsmen work
    to their own policy once a case is escalated."""

    default: Policy
    by_type: dict[str, Policy]
    by_category: dict[str, Policy]
    ombudsman: Policy

    def for_case(self, case_type: str, category: str, at_ombudsman: bool) -> Policy:
        if at_ombudsman:
            return self.ombudsman
        return self.by_category.get(category) or self.by_type.get(case_type) or self.default


def policy_from(row: dict, base: Policy | None = None) -> Policy:
    def pick(key, convert, fallback):
        return convert(row[key]) if key in row else fallback

    return Policy(
        acknowledge=pick("acknowledge", Duration.parse, base.acknowledge if base else None),
        resolve=pick("resolve", Duration.parse, base.resolve if base else None),
        warn_at=pick("warn_at", float, base.warn_at if base else 0.75),
        calendar=pick("calendar", _calendar, base.calendar if base else CALENDARS["working-days"]),
    )


def _calendar(name: str) -> Calendar:
    if name not in CALENDARS:
        raise ValueError(f"calendar must be one of {', '.join(CALENDARS)}, not {name!r}")
    return CALENDARS[name]


def policies_from(document: dict) -> Policies:
    """Policies from the YAML document operators write (see shared/data/sla.yaml)."""
    default = policy_from(document["default"])
    if default.acknowledge is None or default.resolve is None:
        raise ValueError("the default policy needs both acknowledge and resolve")
    return Policies(
        default=default,
        by_type={k: policy_from(v, default) for k, v in (document.get("types") or {}).items()},
        by_category={k: policy_from(v, default)
                     for k, v in (document.get("categories") or {}).items()},
        ombudsman=policy_from(document.get("ombudsman") or {}, default),
    )
