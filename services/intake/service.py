"""Intake: where a citizen's case enters and where the citizen follows it."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from services.intake import views
from services.intake.domain import (
    Case,
    case_id_for,
    format_tracking_code,
    nfc,
    normalise_tracking_code,
)
from services.intake.schemas import CaseView, CategoryOut, SubmitCase, Submitted
from shared import access
from shared.categories import categories
from shared.config import env
from shared.consumer import on_events
from shared.db import DatabaseProvider
from shared.events import STATUS_AFTER
from shared.offices import describe
from shared.store import CaseStore, EventStore
from shared.web import HealthAndSpec, HttpError, endpoint, forbidden, not_found


class Intake(CaseStore):
    name = "intake"


def _secret(purpose: str, value: str) -> bytes:
    return hmac.new(env("OURVOICE_SECRET").encode(), f"{purpose}:{value}".encode(),
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
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


class Service(HealthAndSpec):
    name = "intake"
    title = "Our Voice intake"

    store = EventStore(Intake)
    db = DatabaseProvider(*views.DDL)

    @endpoint("GET", "/v1/categories", allow=(access.PUBLIC,), response=CategoryOut(many=True))
    def list_categories(self, request):
        """The service categories a case can be about."""
        return [
            {"code": c.code, "name_en": c.name_en, "name_km": c.name_km,
             "case_types": list(c.case_types)}
            for c in categories().values()
        ]

    @endpoint("POST", "/v1/cases", allow=(access.PUBLIC,), body=SubmitCase, response=Submitted,
              status=201)
    def submit(self, request, payload):
        """Submit a complaint, support request, information request or evaluation."""
        key = request.headers.get("Idempotency-Key")
        if key is not None and not (1 <= len(key) <= 200):
            raise HttpError(400, {"Idempotency-Key": ["must be 1 to 200 characters"]})
        tracking_code = new_tracking_code(key)
        case_id = case_id_for(tracking_code)
        token = access.citizen_token(case_id)
        case = Case(
            case_id=case_id,
            context={"tracking_code": tracking_code, "commune": payload["location"]["commune"],
                     "office_id": None},
            type=payload["type"],
            category=payload["category"],
            description=nfc(payload["description"]),
            language=payload["language"],
            anonymous=payload["complainant"]["anonymous"],
            gender=payload["complainant"]["gender"],
            rating=payload.get("rating"),
            citizen_token_hash=access.citizen_token_hash(token),
            fingerprint=fingerprint(payload),
            channel="app",
        )
        try:
            self.store.record(case)
        except IntegrityError:
            existing = self.store.repository.get(case_id)
            if existing.fingerprint != case.fingerprint:
                raise HttpError(409, {"Idempotency-Key": [
                    "already used for a different submission"]}) from None
        return {"case_id": case_id, "tracking_code": tracking_code, "citizen_token": token,
                "status": "submitted"}

    @endpoint("GET", "/v1/cases/{tracking_code}", allow=("citizen",), response=CaseView)
    def follow(self, request, tracking_code, principal):
        """A citizen follows their case with the token they got at submission."""
        code = normalise_tracking_code(tracking_code)
        if code is None:
            raise not_found("case")
        try:
            case = self.store.repository.get(case_id_for(code))
        except AggregateNotFoundError:
            raise not_found("case") from None
        if principal.case_id != case.id:
            raise forbidden("this token does not open this case")
        with self.db.transaction() as cursor:
            view, timeline = views.read(cursor, case.id)
        office = describe(view["office_id"]) if view and view["office_id"] else None
        return {
            "tracking_code": case.tracking_code,
            "type": case.type,
            "category": case.category,
            "status": view["status"] if view else "submitted",
            "office": {"id": office.id, "name_en": office.name_en, "name_km": office.name_km}
            if office else None,
            "timeline": [
                {"event_type": row["event_type"], "status": STATUS_AFTER.get(row["event_type"]),
                 "occurred_at": row["occurred_at"].isoformat()}
                for row in timeline
            ],
        }

    @on_events("intake")
    def keep_case_view(self, event, tracking):
        with self.db.tracked("intake", tracking) as cursor:
            views.apply(cursor, event)
