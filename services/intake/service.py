"""Intake: where a citizen's case enters, where the citizen follows it and adds to it,
and the Open311 door to the same cases."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID

import eventlet
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError
from marshmallow import ValidationError
from werkzeug.wrappers import Response

from services.intake import open311, privacy, views
from services.intake.appends import NewCases
from services.intake.commands import COMMANDS
from services.intake.domain import (
    FINAL,
    Case,
    NotAllowed,
    TooManyMessages,
    first_line,
)
from services.intake.limits import IntakeLimitsProvider
from services.intake.schemas import (
    CONTACT_FIELDS,
    CaseView,
    CategoryOut,
    CitizenToken,
    Feedback,
    Message,
    MessageRecorded,
    Recorded,
    SubmitCase,
    Submitted,
    Withdrawal,
)
from shared import access
from shared.categories import categories
from shared.config import citizen_token_retention, environment, signing_secrets
from shared.consumer import on_events
from shared.db import DatabaseProvider
from shared.events import STATUS_AFTER
from shared.limits import retry_after
from shared.offices import describe
from shared.rpc import RpcProxy, rpc
from shared.store import CaseStore, EventStore
from shared.tracking import case_id_for, format_tracking_code, normalise_tracking_code
from shared.web import (
    HealthAndSpec,
    HttpError,
    endpoint,
    field_errors,
    forbidden,
    json_response,
    not_found,
)

IDEMPOTENCY_KEY = {"Idempotency-Key": {"type": "string", "minLength": 1, "maxLength": 200}}
CONFLICT = "the case's state does not allow this"
TOO_MANY = "too many submissions from this address"
HIDDEN = "[sensitive case: only the ombudsman it went to reads this]"
# Open311 lists only recent requests unless asked for a period or for ids (GeoReport v2).
OPEN311_DEFAULT_DAYS = 90
OPEN311_MAX_REQUESTS = 1000
# How long the citizen's view of a sensitive case waits for routing to give its words.
WORDS_TIMEOUT = 5.0
# Accepted only outside production (OURVOICE_ENV=production) and only while
# OURVOICE_OPEN311_KEYS is unset: deployments list their own keys there.
DEVELOPMENT_OPEN311_KEY = "open311-development-key"
# The grant an operator gives an Open311 key to read descriptions (never of a sensitive case).
READ_DESCRIPTIONS = "read-descriptions"


class Intake(CaseStore):
    name = "intake"


def _secret(purpose: str, value: str) -> bytes:
    return hmac.new(signing_secrets()[0].key, f"{purpose}:{value}".encode(),
                    hashlib.sha256).digest()


def new_tracking_code(idempotency_key: str | None) -> str:
    if idempotency_key:
        # The same key always gives the same code, hence the same case id: a retry, even
        # one racing the first attempt, collides on the case instead of creating another.
        number = int.from_bytes(_secret("idempotency", idempotency_key)[:8], "big")
    else:
        number = secrets.randbits(64)
    return format_tracking_code(number)


def fingerprint(payload: dict) -> str:
    """Tells a retry from a different submission under the same Idempotency-Key. Keyed,
    so the stored value says nothing about the phone number or name it covers."""
    return _secret("fingerprint", json.dumps(payload, sort_keys=True, default=str)).hex()


def open311_keys() -> dict[str, frozenset[str]]:
    """The Open311 api_keys, each with what it is granted beyond submitting: an entry
    `KEY:read-descriptions` also reads the descriptions of ordinary cases."""
    configured = os.environ.get("OURVOICE_OPEN311_KEYS")
    if configured is None:
        if environment() != "production":
            return {DEVELOPMENT_OPEN311_KEY: frozenset()}
        return {}
    keys = {}
    for entry in configured.split(","):
        key, _, grants = entry.partition(":")
        if key.strip():
            keys[key.strip()] = frozenset(g.strip() for g in grants.split("+") if g.strip())
    return keys




# A read may bring an api_key (for descriptions): a wrong one is a 403, and guessing is
# limited as it is for submissions.
OPEN311_READ_ERRORS = {403: "api_key not known", 429: "too many wrong api_keys"}


def too_many(seconds: float) -> Response:
    wait = retry_after(seconds)
    return json_response(429, {"errors": {"_": [f"{TOO_MANY}; try again in {wait} s"]}},
                         headers={"Retry-After": wait})


def conflict(refusal: NotAllowed) -> HttpError:
    if isinstance(refusal, TooManyMessages):
        if refusal.retry_after is None:  # the case is full: waiting will not help
            return HttpError(409, {"text": [refusal.message]})
        return HttpError(429, {"text": [refusal.message]},
                         headers={"Retry-After": retry_after(refusal.retry_after)})
    return HttpError(409, {"status": [refusal.message]})


class Service(HealthAndSpec):
    name = "intake"
    title = "Our Voice intake"
    commands = COMMANDS

    store = EventStore(Intake, projections=[views.CASES])
    db = DatabaseProvider(*privacy.DDL, subscribers=[views.CASE_VIEW])
    routing = RpcProxy("routing")
    limit = IntakeLimitsProvider()
    new_cases = NewCases()
    master_key = privacy.MasterKey()

    # -- categories and submission --------------------------------------------------
    @endpoint("GET", "/v1/categories", allow=(access.PUBLIC,), response=CategoryOut(many=True))
    def list_categories(self, request):
        """The service categories a case can be about, with the level that delivers them."""
        return [
            {"code": c.code, "name_en": c.name_en, "name_km": c.name_km, "level": c.level,
             "sensitive": c.sensitive, "case_types": list(c.case_types)}
            for c in categories().values()
        ]

    @endpoint("POST", "/v1/cases", allow=(access.PUBLIC,), body=SubmitCase, response=Submitted,
              status=201, headers=IDEMPOTENCY_KEY,
              errors={409: "Idempotency-Key already used for another submission",
                      429: TOO_MANY})
    def submit(self, request, payload):
        """Submit a complaint, support request, information request or evaluation."""
        wait = self.limit.admit(request.remote_addr or "")
        if wait is not None:
            return too_many(wait)
        key = request.headers.get("Idempotency-Key")
        if key is not None and not (1 <= len(key) <= 200):
            raise HttpError(400, {"Idempotency-Key": ["must be 1 to 200 characters"]})
        return self._submit(payload, key, channel="app")

    def _submit(self, payload: dict, idempotency_key: str | None, channel: str) -> dict:
        complainant = payload["complainant"]
        contact = {f: complainant[f] for f in CONTACT_FIELDS if complainant.get(f)}
        category = categories()[payload["category"]]
        for _ in range(3):
            tracking_code = new_tracking_code(idempotency_key)
            case_id = case_id_for(tracking_code)
            sealed, erased = None, False
            with self.db.transaction() as cursor:
                data_key = privacy.case_key(cursor, self.master_key, case_id) if contact else None
                try:
                    token = access.issue_citizen_token(
                        cursor, case_id, 1, privacy.token_seed(cursor, self.master_key, case_id))
                except access.Unauthenticated:
                    raise HttpError(409, {"Idempotency-Key": [
                        "this submission's token was signed with a secret no longer in use; "
                        "submit again without the key"]}) from None
            if contact:
                # No key: it was erased, so this code belongs to a case that exists.
                erased = data_key is None
                sealed = None if erased else privacy.seal_contact(data_key, case_id, contact)
            case = Case(
                case_id=case_id,
                context={"tracking_code": tracking_code,
                         "commune": payload["location"]["commune"], "office_id": None},
                type=payload["type"],
                category=category.code,
                description=payload.get("description", ""),
                language=payload["language"],
                anonymous=complainant["anonymous"],
                gender=complainant["gender"],
                rating=payload.get("rating"),
                citizen_token_hash=access.citizen_token_hash(token),
                fingerprint=fingerprint({"channel": channel, **payload}),
                channel=channel,
                sensitive=category.sensitive,
                consent_to_contact=complainant["consent_to_contact"],
                sealed_contact=sealed,
            )
            if erased or not self._record_new(case):
                if not idempotency_key:
                    continue  # two random codes met: draw another
                existing = self.store.repository.get(case_id)
                if existing.fingerprint != case.fingerprint:
                    raise HttpError(409, {"Idempotency-Key": [
                        "already used for a different submission"]})
            return {"case_id": case_id, "tracking_code": tracking_code,
                    "citizen_token": token, "status": "submitted"}
        raise RuntimeError("no free tracking code after three draws")

    def _record_new(self, case: Case) -> bool:
        """Record a new case (together with others arriving at the same moment); False
        when a case with its id exists already."""
        return self.new_cases.record_new(case)

    # -- the citizen following a case ----------------------------------------------
    def _reads_descriptions(self, request, query: dict) -> bool:
        """Whether a GET's api_key opens descriptions; an api_key given must be known
        (403), and guessing is limited as it is for submissions."""
        if "api_key" not in query:
            return False
        grants = open311.check_api_key(query["api_key"], open311_keys(),
                                       self.limit.key_failures, request.remote_addr or "")
        return READ_DESCRIPTIONS in grants

    def _case(self, tracking_code: str) -> Case:
        code = normalise_tracking_code(tracking_code)
        if code is None:
            raise not_found("case")
        try:
            return self.store.repository.get(case_id_for(code))
        except AggregateNotFoundError:
            raise not_found("case") from None

    def _citizens_case(self, tracking_code: str, principal: access.Principal) -> Case:
        case = self._case(tracking_code)
        if principal.case_id != case.id:
            raise forbidden("this token does not open this case")
        self._keep_within_retention(case)
        return case

    def _keep_within_retention(self, case: Case) -> None:
        """A closed or withdrawn case stays open to its tokens for the retention period,
        then they are revoked, here, the first time one is used after it: no timer."""
        with self.db.transaction() as cursor:
            cursor.execute("SELECT status, status_at FROM intake_case_view WHERE case_id = %s",
                           (case.id,))
            view = cursor.fetchone()
            if view is None or view["status"] not in FINAL:
                return
            if view["status_at"] + citizen_token_retention() > datetime.now(UTC):
                return
            access.revoke_citizen_tokens(cursor, case.id, "retention")
        raise HttpError(401, {"Authorization": [access.REVOKED]})

    @endpoint("POST", "/v1/cases/{tracking_code}/token", allow=("citizen",),
              response=CitizenToken, status=201)
    def rotate_token(self, request, tracking_code, principal):
        """A new citizen token for the case; the one sent is refused from now on (for a
        phone that may be lost, or to move to a new signing secret)."""
        case = self._citizens_case(tracking_code, principal)
        with self.db.transaction() as cursor:
            seed = privacy.token_seed(cursor, self.master_key, case.id)
            try:
                token = access.rotate_citizen_token(cursor, principal, seed)
            except access.Unauthenticated as refusal:
                raise HttpError(401, {"Authorization": [str(refusal)]}) from None
        return {"citizen_token": token}

    def _view(self, case_id: UUID) -> dict:
        with self.db.transaction() as cursor:
            view, _ = views.read(cursor, case_id)
        return view or {"status": "submitted", "office_id": None}

    @staticmethod
    def _ids(view: dict) -> tuple[str | None, str | None]:
        question, resolution = view.get("question_id"), view.get("resolution_id")
        return (str(question) if question else None, str(resolution) if resolution else None)

    @endpoint("GET", "/v1/cases/{tracking_code}", allow=("citizen",), response=CaseView)
    def follow(self, request, tracking_code, principal):
        """A citizen follows their case with the token they got at submission."""
        case = self._citizens_case(tracking_code, principal)
        with self.db.transaction() as cursor:
            view, timeline = views.read(cursor, case.id)
        view = view or {"status": "submitted", "office_id": None}
        if case.sensitive:
            view, timeline = self._with_words(case, view, timeline)
        status = case.status_seen_by_citizen(view["status"])
        question_id, resolution_id = self._ids(view)
        office = describe(view["office_id"]) if view.get("office_id") else None
        return CaseView().dump({
            "tracking_code": case.tracking_code,
            "type": case.type,
            "category": case.category,
            "language": case.language,
            "status": status,
            "office": {"id": office.id, "name_en": office.name_en, "name_km": office.name_km}
            if office else None,
            "deadlines": {"acknowledge_due": view.get("acknowledge_due"),
                          "resolve_due": view.get("resolve_due")},
            "description": case.description,
            "question": view.get("question") if status == "waiting-for-citizen" else None,
            "resolution": view.get("resolution"),
            "findings": view.get("findings"),
            "recommendation": view.get("recommendation"),
            "messages": case.messages,
            "can": case.possible_actions(status, question_id, resolution_id),
            "timeline": [
                {"event_type": row["event_type"], "status": row["status"],
                 "title": views.title(row["event_type"], case.language),
                 "detail": self._reader(row, case.language)
                 if row["event_type"] == "CaseFileOpened" else row["detail"],
                 "occurred_at": row["occurred_at"]}
                for row in timeline
            ],
        })

    @staticmethod
    def _reader(row: dict, language: str) -> str:
        office = describe(row["reader_office_id"]) if row["reader_office_id"] else None
        name = (office.name_km if language == "km" else office.name_en) if office else None
        return views.reader(row["reader_role"], name, language)

    def _with_words(self, case: Case, view: dict, timeline: list) -> tuple[dict, list]:
        """A sensitive case's public events carry no words: what the ombudsman said to
        the citizen is asked of routing, for this reader alone, and kept nowhere here."""
        try:
            with eventlet.Timeout(WORDS_TIMEOUT):
                words = self.routing.words_for_citizen(str(case.id))
        except (Exception, eventlet.Timeout):
            raise HttpError(503, {"_": ["the case's messages cannot be read now; try again "
                                        "in a moment"]}) from None
        if not words:
            return view, timeline
        view = {**view, **words}
        # The timeline shows the latest question, resolution and findings with their entry.
        latest = {}
        for row in timeline:
            if row["event_type"] in views.DETAIL:
                latest[row["event_type"]] = row["event_id"]
        timeline = [{**row, "detail": words[views.DETAIL[row["event_type"]]]}
                    if latest.get(row["event_type"]) == row["event_id"] else row
                    for row in timeline]
        return view, timeline

    def _act(self, tracking_code: str, principal: access.Principal,
             action: Callable[[Case, dict], dict]) -> dict:
        """Run a citizen's command against the case and the view's status, and record
        it. Two commands racing on one case collide on its version: take the new state
        and decide again."""
        for _ in range(3):
            case = self._citizens_case(tracking_code, principal)
            view = self._view(case.id)
            try:
                result = action(case, view)
            except NotAllowed as refusal:
                raise conflict(refusal) from None
            try:
                self.store.record(case)
            except IntegrityError:
                continue
            return {"tracking_code": case.tracking_code, **result}
        raise HttpError(409, {"status": ["the case changed meanwhile; try again"]})

    @endpoint("POST", "/v1/cases/{tracking_code}/messages", allow=("citizen",), body=Message,
              response=MessageRecorded,
              errors={409: CONFLICT + ", or the case holds all the messages it takes",
                      429: "the case took all the messages it takes in 24 hours"})
    def send_message(self, request, tracking_code, principal, payload):
        """A message of the citizen's; it answers the office's question if one is open."""
        def act(case: Case, view: dict) -> dict:
            question_id, _ = self._ids(view)
            answers = case.send_message(payload["text"], view["status"], question_id,
                                        view["office_id"], self.limit.messages,
                                        datetime.now(UTC))
            status = STATUS_AFTER["InformationProvided"] if answers else view["status"]
            return {"status": status, "answers_request": answers}

        return self._act(tracking_code, principal, act)

    @endpoint("POST", "/v1/cases/{tracking_code}/feedback", allow=("citizen",), body=Feedback,
              response=Recorded, errors={409: CONFLICT})
    def give_feedback(self, request, tracking_code, principal, payload):
        """Feedback after a resolution; not satisfied is an appeal to the ombudsman."""
        def act(case: Case, view: dict) -> dict:
            _, resolution_id = self._ids(view)
            case.give_feedback(payload["satisfied"], payload.get("rating"),
                               payload.get("comment"), view["status"], resolution_id,
                               view["office_id"])
            return {"status": view["status"] if payload["satisfied"]
                    else STATUS_AFTER["CaseAppealed"]}

        return self._act(tracking_code, principal, act)

    @endpoint("POST", "/v1/cases/{tracking_code}/withdraw", allow=("citizen",), body=Withdrawal,
              response=Recorded, errors={409: CONFLICT})
    def withdraw(self, request, tracking_code, principal, payload):
        """The citizen withdraws the case (an optional reason stays with intake)."""
        def act(case: Case, view: dict) -> dict:
            case.withdraw(payload.get("reason"), view["status"], view["office_id"])
            return {"status": STATUS_AFTER["CaseWithdrawn"]}

        return self._act(tracking_code, principal, act)

    @on_events("intake")
    def keep_case_view(self, event, tracking):
        with self.db.tracked("intake", tracking) as cursor:
            views.apply(cursor, event)

    # -- for other services ---------------------------------------------------------
    def _case_by_id(self, case_id: str) -> Case | None:
        try:
            return self.store.repository.get(UUID(str(case_id)))
        except (ValueError, AggregateNotFoundError):
            return None

    @rpc(callers=("routing",))
    def case_file(self, case_id: str, viewer_role: str) -> dict | None:
        """What an office reads of the case: never contact data nor gender, and of a
        sensitive case no words of the citizen unless the reader is the ombudsman. Only
        routing may ask (the broker says who asks), for a viewer it has authenticated."""
        case = self._case_by_id(case_id)
        if case is None:
            return None
        hidden = case.sensitive and viewer_role != "ombudsman"
        return {
            "case_id": str(case.id),
            "tracking_code": case.tracking_code,
            "type": case.type,
            "category": case.category,
            "language": case.language,
            "sensitive": case.sensitive,
            "description": HIDDEN if hidden else case.description,
            "description_hidden": hidden,
            "rating": case.rating,
            "channel": case.channel,
            "anonymous": case.anonymous,
            "personal_data": case.personal_data,
            "submitted_at": case.created_on.isoformat(),
            "messages": [
                {"text": HIDDEN if hidden else m["text"], "at": m["at"].isoformat(),
                 "answers_request": m["answers_request"]}
                for m in case.messages
            ],
            "feedback": [
                {"satisfied": f["satisfied"], "rating": f["rating"],
                 "comment": HIDDEN if hidden and f["comment"] else f["comment"],
                 "at": f["at"].isoformat()}
                for f in case.feedback
            ],
        }

    @rpc(callers=("routing",))
    def first_lines(self, case_ids: list[str], viewer_role: str) -> dict[str, str | None]:
        """The first line of each case's description, for a page of an office's queue:
        one query for the page (the case list keeps descriptions of ordinary cases); a
        sensitive case's only for the ombudsman, read from its own events, else null."""
        ids = []
        for case_id in case_ids[:500]:
            try:
                ids.append(UUID(str(case_id)))
            except ValueError:
                continue
        with self.db.transaction() as cursor:
            cursor.execute("SELECT case_id, sensitive, public_description FROM intake_cases "
                           "WHERE case_id = ANY(%s)", (ids,))
            rows = {row["case_id"]: row for row in cursor.fetchall()}
        lines = {}
        for case_id in ids:
            row = rows.get(case_id)
            if row is not None and not row["sensitive"]:
                lines[str(case_id)] = first_line(row["public_description"])
            elif viewer_role == "ombudsman" or row is None:
                # A sensitive case for its ombudsman, or one the list has not caught up with.
                case = self._case_by_id(case_id)
                hidden = case is None or (case.sensitive and viewer_role != "ombudsman")
                lines[str(case_id)] = None if hidden else first_line(case.description)
            else:
                lines[str(case_id)] = None
        return lines

    @rpc(callers=("notifications",))
    def contact_for(self, case_id: str) -> dict | None:
        """How to reach the citizen, only if they consented, are not anonymous and their
        data was not erased. For notifications; never shown to offices as such."""
        case = self._case_by_id(case_id)
        if case is None or case.anonymous or not case.consent_to_contact \
                or case.personal_data != "kept":
            return None
        with self.db.transaction() as cursor:
            data_key = privacy.stored_key(cursor, self.master_key, case.id)
        contact = privacy.open_contact(data_key, case.id, case.sealed_contact) if data_key else None
        if contact is None:
            return None
        return {"name": contact.get("name"), "phone": contact.get("phone"),
                "email": contact.get("email"), "language": case.language}

    @rpc(callers=("reporting",))
    def gender_counts(self, filters: dict | None = None) -> list[dict]:
        """Cases by gender, office, area, type, category and month, for reporting (which
        suppresses small cells before anything is shown)."""
        with self.db.transaction() as cursor:
            return views.gender_counts(cursor, filters or {})

    # -- Open311 GeoReport v2 -------------------------------------------------------
    @endpoint("GET", "/open311/v2/services.json", allow=(access.PUBLIC,),
              response=open311.ServiceOut(many=True))
    def open311_services(self, request):
        """Open311: the services (our categories)."""
        return [open311.service(c) for c in categories().values()]

    @endpoint("GET", "/open311/v2/services/{service_code}.json", allow=(access.PUBLIC,),
              response=open311.ServiceDefinition)
    def open311_service_definition(self, request, service_code):
        """Open311: the attributes a request for this service may carry."""
        category = categories().get(service_code)
        if category is None:
            raise not_found("service")
        return open311.definition(category)

    @endpoint("GET", "/open311/v2/requests.json", allow=(access.PUBLIC,),
              query=open311.RequestsQuery, response=open311.RequestOut(many=True),
              errors=OPEN311_READ_ERRORS)
    def open311_requests(self, request, query):
        """Open311: service requests, newest first (the last 90 days unless asked); never
        a sensitive case, and descriptions only with an api_key granted them."""
        descriptions = self._reads_descriptions(request, query)
        where, params = ["NOT c.sensitive"], {}
        if query.get("service_request_id"):
            where.append("c.tracking_code = ANY(%(ids)s)")
            params["ids"] = [normalise_tracking_code(i) or i
                             for i in open311.requested_ids(query["service_request_id"])]
        else:
            default_start = datetime.now(UTC) - timedelta(days=OPEN311_DEFAULT_DAYS)
            where.append("c.submitted_at >= %(start)s")
            params["start"] = query.get("start_date") or default_start
            if query.get("end_date"):
                where.append("c.submitted_at <= %(end)s")
                params["end"] = query["end_date"]
            if query.get("service_code"):
                where.append("c.category = %(category)s")
                params["category"] = query["service_code"]
            statuses = open311.parse_status_filter(query.get("status"))
            if len(set(statuses)) == 1:
                negate = "" if statuses[0] == "closed" else "NOT"
                where.append(f"COALESCE(v.status, 'submitted') {negate} IN "
                             "('resolved', 'closed', 'withdrawn')")
        with self.db.transaction() as cursor:
            cursor.execute(
                f"""SELECT c.tracking_code, c.category, c.commune, c.sensitive,
                           c.public_description AS description, c.submitted_at,
                           v.status, v.status_at, v.office_id, v.resolve_due
                    FROM intake_cases c LEFT JOIN intake_case_view v USING (case_id)
                    WHERE {' AND '.join(where)}
                    ORDER BY c.submitted_at DESC LIMIT {OPEN311_MAX_REQUESTS}""",
                params,
            )
            rows = cursor.fetchall()
        return open311.RequestOut(many=True).dump([open311.request_out(r, descriptions)
                                                    for r in rows])

    @endpoint("GET", "/open311/v2/requests/{service_request_id}.json", allow=(access.PUBLIC,),
              query=open311.Reader, response=open311.RequestOut(many=True),
              errors=OPEN311_READ_ERRORS)
    def open311_request(self, request, service_request_id, query):
        """Open311: one service request (as a list of one, as GeoReport v2 has it). A
        sensitive case is not found, as if it did not exist."""
        descriptions = self._reads_descriptions(request, query)
        case = self._case(service_request_id)
        if case.sensitive:
            raise not_found("case")
        view = self._view(case.id)
        row = {"tracking_code": case.tracking_code, "category": case.category,
               "commune": case.commune, "sensitive": case.sensitive,
               "description": case.description, "submitted_at": case.created_on,
               "status": case.status_seen_by_citizen(view["status"]),
               "status_at": view.get("status_at"), "office_id": view.get("office_id"),
               "resolve_due": view.get("resolve_due")}
        return open311.RequestOut(many=True).dump([open311.request_out(row, descriptions)])

    @endpoint("POST", "/open311/v2/requests.json", allow=(access.PUBLIC,),
              form=open311.NewRequest, response=open311.Posted(many=True), status=201,
              errors={403: "api_key not known", 409: "conflicting retry",
                      429: TOO_MANY + ", or too many wrong api_keys"})
    def open311_submit(self, request, payload):
        """Open311: submit a service request (form-encoded, with an api_key)."""
        open311.check_api_key(payload["api_key"], open311_keys(), self.limit.key_failures,
                              request.remote_addr or "")
        wait = self.limit.admit(request.remote_addr or "")
        if wait is not None:
            return too_many(wait)
        try:
            case = SubmitCase().load(open311.case_payload(payload))
        except ValidationError as error:
            raise HttpError(400, {open311.FORM_FIELD.get(field, field): messages
                                  for field, messages in field_errors(error).items()}
                            ) from None
        submitted = self._submit(case, None, channel="open311")
        return [{"service_request_id": submitted["tracking_code"],
                 "service_notice": open311.SERVICE_NOTICE, "account_id": None,
                 "citizen_token": submitted["citizen_token"]}]
