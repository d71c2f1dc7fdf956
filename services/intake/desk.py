"""The office desk: staff record a case for a citizen who came in or called, with the
citizen's consent, through the same submission path as the app (channel "office-desk").
Staff call intake here directly; the console, which talks to routing alone, reaches the
same use case over RPC (combined in service.Service)."""

from __future__ import annotations

from datetime import UTC, datetime

from marshmallow import ValidationError

from services.intake.application import Desk
from services.intake.citizens import IDEMPOTENCY_KEY
from services.intake.schemas import DeskCase, Submitted
from shared import access
from shared.offices import describe
from shared.rpc import rpc
from shared.web import HttpError, endpoint, field_errors, not_found

CHANNEL = "office-desk"
DESK_FIELDS = ("consent", "about_this_office")
_SCHEMA = DeskCase()


class OfficeDesk:
    """Mixed into intake's Service, whose `_submit` records the case."""

    @endpoint("POST", "/v1/offices/{office_id}/desk/cases", allow=(access.OfficeInPath(),),
              body=DeskCase, response=Submitted, status=201, headers=IDEMPOTENCY_KEY,
              errors={409: "Idempotency-Key already used for another case"})
    def record_at_desk_http(self, request, office_id, principal, payload):
        """Record a case for a citizen at the office desk, with their consent; the answer
        (tracking code, citizen token) is for the citizen to take away."""
        return Submitted().dump(self._record_at_desk(
            office_id, payload, request.headers.get("Idempotency-Key")))

    @rpc(callers=("routing",))
    def record_at_desk(self, office_id: str, payload: dict,
                       idempotency_key: str | None = None) -> dict:
        """The same, for the console (routing has authenticated the staff of the office).
        A refusal comes back as {"status": 400|404|409, "errors": {...}}."""
        try:
            checked = _SCHEMA.load(payload if isinstance(payload, dict) else {})
        except ValidationError as error:
            return {"status": 400, "errors": field_errors(error)}
        try:
            return Submitted().dump(self._record_at_desk(office_id, checked, idempotency_key))
        except HttpError as refusal:
            return {"status": refusal.status, "errors": refusal.errors}

    def _record_at_desk(self, office_id: str, payload: dict, key: str | None) -> dict:
        """The one use case behind both doors: a checked DeskCase recorded as a case of
        the office-desk channel."""
        if describe(office_id) is None:
            raise not_found("office")
        if key is not None and not (1 <= len(key) <= 200):
            raise HttpError(400, {"Idempotency-Key": ["must be 1 to 200 characters"]})
        desk = Desk(office_id=office_id, about_this_office=payload["about_this_office"],
                    consent_how=payload["consent"]["how"], consent_at=datetime.now(UTC))
        submission = {k: v for k, v in payload.items() if k not in DESK_FIELDS}
        # An office's keys are its own: two offices may use the same without meeting.
        scoped = f"{CHANNEL}:{office_id}:{key}" if key is not None else None
        return self._submit(submission, scoped, channel=CHANNEL, desk=desk)
