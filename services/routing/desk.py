"""The office desk in the console: staff record a case for a citizen who came in or
called. The console talks to routing alone, so routing passes the request on to intake,
whose use case checks and records it as it does its own desk endpoint's (combined in
service.Service; intake's answer is the citizen's tracking code and token)."""

from __future__ import annotations

from services.routing.schemas import DeskCase, DeskRecorded
from shared import access
from shared.web import HttpError, endpoint, not_found

IDEMPOTENCY_KEY = {"Idempotency-Key": {"type": "string", "minLength": 1, "maxLength": 200}}


class Desk:
    """Mixed into routing's Service, whose directory and `_ask_intake` it uses."""

    @endpoint("POST", "/v1/offices/{office_id}/desk/cases", allow=(access.OfficeInPath(),),
              body=DeskCase, response=DeskRecorded, status=201, headers=IDEMPOTENCY_KEY,
              errors={409: "Idempotency-Key already used for another case",
                      503: "intake does not answer"})
    def record_at_desk(self, request, office_id, principal, payload):
        """Record a case for a citizen at the office desk, with their consent (intake
        checks it as its own POST /v1/offices/{office_id}/desk/cases does)."""
        if office_id not in self.directory():
            raise not_found("office")
        answer = self._ask_intake("record_at_desk", office_id, payload,
                                  request.headers.get("Idempotency-Key"),
                                  what="the case")
        if "errors" in answer:
            raise HttpError(answer["status"], answer["errors"])
        return DeskRecorded().dump(answer)
