"""The citizen's API: categories, submission, and following and adding to one's case
with the citizen token got at submission (combined in service.Service)."""

from __future__ import annotations

from datetime import UTC, datetime

import eventlet

from services.intake import readmodels
from services.intake.application import NOT_YET_VIEWED, UsedForAnother, view_ids
from services.intake.domain import FINAL, Case, NotAllowed, TooManyMessages
from services.intake.limits import TOO_MANY, too_many
from services.intake.schemas import (
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
from shared.config import citizen_token_retention
from shared.limits import retry_after
from shared.offices import describe
from shared.web import HttpError, endpoint, forbidden, not_found

IDEMPOTENCY_KEY = {"Idempotency-Key": {"type": "string", "minLength": 1, "maxLength": 200}}
CONFLICT = "the case's state does not allow this"
# How long the citizen's view of a sensitive case waits for routing to give its words.
WORDS_TIMEOUT = 5.0


def conflict(refusal: NotAllowed) -> HttpError:
    if isinstance(refusal, TooManyMessages):
        if refusal.retry_after is None:  # the case is full: waiting will not help
            return HttpError(409, {"text": [refusal.message]})
        return HttpError(429, {"text": [refusal.message]},
                         headers={"Retry-After": retry_after(refusal.retry_after)})
    return HttpError(409, {"status": [refusal.message]})


class Citizens:
    """What the citizen's app asks of intake."""

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
            raise too_many(wait)
        key = request.headers.get("Idempotency-Key")
        if key is not None and not (1 <= len(key) <= 200):
            raise HttpError(400, {"Idempotency-Key": ["must be 1 to 200 characters"]})
        return self._submit(payload, key, channel="app")

    def _submit(self, payload: dict, idempotency_key: str | None, channel: str,
                media_url: str | None = None, desk=None) -> dict:
        try:
            return self.store.submit(payload, channel, idempotency_key, self._keys(),
                                     self.new_cases.record_new, media_url=media_url, desk=desk)
        except access.Unauthenticated:
            raise HttpError(409, {"Idempotency-Key": [
                "this submission's token was signed with a secret no longer in use; "
                "submit again without the key"]}) from None
        except UsedForAnother as refusal:
            raise HttpError(409, {"Idempotency-Key": [refusal.message]}) from None

    # -- the citizen following a case ----------------------------------------------
    def _citizens_case(self, tracking_code: str, principal: access.Principal) -> Case:
        case = self.store.case_by_code(tracking_code)
        if case is None:
            raise not_found("case")
        if principal.case_id != case.id:
            raise forbidden("this token does not open this case")
        self._keep_within_retention(case)
        return case

    def _keep_within_retention(self, case: Case) -> None:
        """A closed or withdrawn case stays open to its tokens for the retention period,
        then they are revoked, here, the first time one is used after it: no timer."""
        with self.db.transaction() as cursor:
            view = readmodels.status_of(cursor, case.id)
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
        self._citizens_case(tracking_code, principal)
        try:
            token = self._keys().rotate_token(principal)
        except access.Unauthenticated as refusal:
            raise HttpError(401, {"Authorization": [str(refusal)]}) from None
        return {"citizen_token": token}

    @endpoint("GET", "/v1/cases/{tracking_code}", allow=("citizen",), response=CaseView)
    def follow(self, request, tracking_code, principal):
        """A citizen follows their case with the token they got at submission."""
        case = self._citizens_case(tracking_code, principal)
        with self.db.transaction() as cursor:
            view, timeline = readmodels.read(cursor, case.id)
        view = view or NOT_YET_VIEWED
        if case.sensitive:
            view, timeline = self._with_words(case, view, timeline)
        status = case.status_seen_by_citizen(view["status"])
        question_id, resolution_id = view_ids(view)
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
                 "title": readmodels.title(row["event_type"], case.language),
                 "detail": self._reader(row, case.language)
                 if row["event_type"] == "CaseFileOpened" else row["detail"],
                 "occurred_at": row["occurred_at"]}
                for row in timeline
            ],
            "attachments": [
                {"attachment_id": a["attachment_id"], "kind": a["kind"],
                 "media_type": a["media_type"], "size": a["size"], "added_by": a["added_by"],
                 "at": a["at"]}
                for a in case.attachments
            ],
        })

    @staticmethod
    def _reader(row: dict, language: str) -> str:
        office = describe(row["reader_office_id"]) if row["reader_office_id"] else None
        name = (office.name_km if language == "km" else office.name_en) if office else None
        return readmodels.reader(row["reader_role"], name, language)

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
            if row["event_type"] in readmodels.DETAIL:
                latest[row["event_type"]] = row["event_id"]
        timeline = [{**row, "detail": words[readmodels.DETAIL[row["event_type"]]]}
                    if latest.get(row["event_type"]) == row["event_id"] else row
                    for row in timeline]
        return view, timeline

    # -- what the citizen adds --------------------------------------------------------
    def _act(self, tracking_code: str, principal: access.Principal, decide) -> dict:
        """A citizen's command on their own case: `decide(case_id)` runs the use case."""
        case = self._citizens_case(tracking_code, principal)
        try:
            return decide(case.id)
        except NotAllowed as refusal:
            raise conflict(refusal) from None

    @endpoint("POST", "/v1/cases/{tracking_code}/messages", allow=("citizen",), body=Message,
              response=MessageRecorded,
              errors={409: CONFLICT + ", or the case holds all the messages it takes",
                      429: "the case took all the messages it takes in 24 hours"})
    def send_message(self, request, tracking_code, principal, payload):
        """A message of the citizen's; it answers the office's question if one is open."""
        return self._act(tracking_code, principal, lambda case_id: self.store.send_message(
            case_id, payload["text"], self._view, self.limit.messages, datetime.now(UTC)))

    @endpoint("POST", "/v1/cases/{tracking_code}/feedback", allow=("citizen",), body=Feedback,
              response=Recorded, errors={409: CONFLICT})
    def give_feedback(self, request, tracking_code, principal, payload):
        """Feedback after a resolution; not satisfied is an appeal to the ombudsman."""
        return self._act(tracking_code, principal, lambda case_id: self.store.give_feedback(
            case_id, payload["satisfied"], payload.get("rating"), payload.get("comment"),
            self._view))

    @endpoint("POST", "/v1/cases/{tracking_code}/withdraw", allow=("citizen",), body=Withdrawal,
              response=Recorded, errors={409: CONFLICT})
    def withdraw(self, request, tracking_code, principal, payload):
        """The citizen withdraws the case (an optional reason stays with intake)."""
        return self._act(tracking_code, principal, lambda case_id: self.store.withdraw(
            case_id, payload.get("reason"), self._view))
