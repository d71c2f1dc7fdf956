"""Routing: sends each case to its office and keeps the offices' queues."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from marshmallow import Schema, fields

from services.routing import queue
from services.routing.domain import Case
from shared import access
from shared.categories import categories
from shared.consumer import on_events
from shared.db import DatabaseProvider, tracking_ddl
from shared.offices import describe
from shared.store import CaseStore, EventStore
from shared.web import HealthAndSpec, endpoint, not_found


class Routing(CaseStore):
    name = "routing"


class QueueEntry(Schema):
    case_id = fields.UUID(required=True)
    tracking_code = fields.String(required=True)
    status = fields.String(required=True)
    type = fields.String(required=True)
    category = fields.String(required=True)
    routed_at = fields.DateTime(required=True)
    acknowledge_due = fields.DateTime(allow_none=True)
    resolve_due = fields.DateTime(required=True)


class OfficeQueue(Schema):
    office_id = fields.String(required=True)
    cases = fields.List(fields.Nested(QueueEntry))


class Service(HealthAndSpec):
    name = "routing"
    title = "Our Voice routing"

    store = EventStore(Routing, projections=[queue.OFFICE_QUEUE])
    db = DatabaseProvider(tracking_ddl("routing"))

    @on_events("routing")
    def route_submitted_case(self, event, tracking):
        if event["event_type"] != "CaseSubmitted":
            return
        case = Case.route(
            case_id=UUID(str(event["case_id"])),
            tracking_code=event["tracking_code"],
            commune=event["location"]["commune"],
            case_type=event["data"]["type"],
            category=categories()[event["data"]["category"]],
            received_at=datetime.fromisoformat(str(event["occurred_at"])),
        )
        self.store.record(case, tracking=tracking)

    @endpoint("GET", "/v1/offices/{office_id}/queue", response=OfficeQueue,
              allow=(access.OfficeInPath(), "auditor", "admin"))
    def office_queue(self, request, office_id):
        """Open cases of an office, nearest deadline first."""
        if describe(office_id) is None:
            raise not_found("office")
        with self.db.transaction() as cursor:
            rows = queue.read(cursor, office_id, limit=500)
        return OfficeQueue().dump({"office_id": office_id, "cases": rows})
