"""Reporting: what happened and how well, from the public events of every service."""

from __future__ import annotations

from marshmallow import Schema, fields

from services.reporting import counts
from shared import access
from shared.consumer import on_events
from shared.db import DatabaseProvider
from shared.web import HealthAndSpec, endpoint


class Summary(Schema):
    total = fields.Integer(required=True)
    by_type = fields.Dict(keys=fields.String(), values=fields.Integer())
    by_category = fields.Dict(keys=fields.String(), values=fields.Integer())
    by_status = fields.Dict(keys=fields.String(), values=fields.Integer())
    by_province = fields.Dict(keys=fields.String(), values=fields.Integer())


class Service(HealthAndSpec):
    name = "reporting"
    title = "Our Voice reporting"

    db = DatabaseProvider(*counts.DDL)

    @on_events("reporting")
    def count(self, event, tracking):
        with self.db.tracked("reporting", tracking) as cursor:
            counts.apply(cursor, event)

    @endpoint("GET", "/v1/reports/summary", allow=(access.PUBLIC,), response=Summary)
    def summary(self, request):
        """Case volumes by type, category, status and province."""
        with self.db.transaction() as cursor:
            return counts.summary(cursor)
