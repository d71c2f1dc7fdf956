"""Reporting: what happened and how well, from the public events of every service; the
history of a case for auditors; the dashboard.

Who sees which figures, and the use cases, are in application.py; this is the nameko
adapter around it: the caller authenticated, intake's gender counts and each service's
part of a history asked over RPC with their time limits, the answers shaped."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

import eventlet
from nameko.timer import timer
from werkzeug.wrappers import Response

from services.reporting import application, audit, readmodels
from services.reporting import summary as report
from services.reporting.application import NotPublic, PartsMissing
from services.reporting.migrations import MIGRATIONS
from services.reporting.schemas import AuditQuery, History, OfficesQuery, Summary, SummaryQuery
from shared import access, checkpoint
from shared.consumer import on_event_batches
from shared.db import DatabaseProvider
from shared.rpc import RpcProxy
from shared.settings import settings
from shared.web import HealthAndSpec, HttpError, endpoint, not_found

log = logging.getLogger(__name__)

DASHBOARD = Path(__file__).resolve().parent / "dashboard"
GENDER_TIMEOUT_SECONDS = 5.0
# How long each service has to give its part of a case's history.
HISTORY_TIMEOUT_SECONDS = 10.0


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
        """The summary as this caller may see it (see application.py)."""
        try:
            return application.summary(self.db, self._caller(request), query, self._gender_rows)
        except NotPublic as refusal:
            raise HttpError(400, refusal.errors) from None

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
        """The scorecards as this caller may see them (see application.py)."""
        try:
            return application.scorecards(self.db, self._caller(request), query,
                                          self._gender_rows)
        except NotPublic as refusal:
            raise HttpError(400, refusal.errors) from None

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
        return application.labels()

    # -- audit ------------------------------------------------------------------------
    @endpoint("GET", "/v1/audit/cases/{tracking_code}", allow=("auditor", "admin"),
              query=AuditQuery, response=History)
    def case_history(self, request, tracking_code, query):
        """Every event of the case from every service, in order, with who did it and
        the case's state after it; `as_of` shows the case as it stood then."""
        try:
            found = application.case_history(self.db, tracking_code, self._history_parts,
                                             query.get("as_of"))
        except PartsMissing as gap:
            raise HttpError(503, {"_": [f"{', '.join(gap.missing)} could not give its part of"
                                        " the case's history; try again"]}) from None
        if found is None:
            raise not_found("case")
        return found

    def _history_parts(self, case_id: str) -> dict[str, list[dict]]:
        """Each service's part of the case's history, asked of all three at once; what
        a service cannot give in time is left out (and the history refused)."""
        asked = {store: getattr(self, store).case_history.call_async(case_id)
                 for store in audit.STORES}
        parts = {}
        with eventlet.Timeout(HISTORY_TIMEOUT_SECONDS, False):
            for store, reply in asked.items():
                try:
                    parts[store] = reply.result()
                except Exception as error:
                    log.warning("no history from %s: %s", store, type(error).__name__)
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
