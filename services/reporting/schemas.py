"""Reporting's request and response schemas."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from services.reporting import summary as report
from shared.offices import describe
from shared.web import Strict


class Moment(fields.Field):
    """A date (midnight in Cambodia) or a date and time (with an offset, else UTC)."""

    default_error_messages = {"invalid": "a date (2026-11-01) or a date and time with offset"}

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            raise self.make_error("invalid") from None
        if len(str(value)) == 10:
            return datetime.combine(moment.date(), time(), ZoneInfo(report.ZONE))
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else value.isoformat()


class Day(fields.Field):
    """A calendar date in Cambodia, for reports: they count whole days at least."""

    default_error_messages = {"invalid": "a date (2026-11-01): reports count whole days"}

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            day = date.fromisoformat(str(value))
        except ValueError:
            raise self.make_error("invalid") from None
        if not 1900 <= day.year <= 9000:  # the month after must be a date too
            raise self.make_error("invalid")
        return day

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else value.isoformat()


def _known_office(office_id: str) -> None:
    if describe(office_id) is None:
        raise ValidationError("no such office")


class SummaryQuery(Strict):
    from_ = Day(data_key="from", metadata={"description": "from this date, inclusive"})
    to = Day(metadata={"description": "until this date, exclusive"})
    province = fields.String(validate=validate.Regexp(r"^\d{2}$"))
    district = fields.String(validate=validate.Regexp(r"^\d{4}$"))
    office_id = fields.String(validate=lambda office: _known_office(office))
    period = fields.String(load_default="month", validate=validate.OneOf(report.PERIODS))

    @validates_schema
    def in_order(self, data, **_):
        if data.get("from_") and data.get("to") and data["to"] <= data["from_"]:
            raise ValidationError("must be after from", "to")


class OfficesQuery(Strict):
    from_ = Day(data_key="from", metadata={"description": "from this date, inclusive"})
    to = Day(metadata={"description": "until this date, exclusive"})
    province = fields.String(validate=validate.Regexp(r"^\d{2}$"),
                             metadata={"description": "only the offices and districts of it"})
    district = fields.String(validate=validate.Regexp(r"^\d{4}$"),
                             metadata={"description": "only the offices of it"})

    @validates_schema
    def in_order(self, data, **_):
        if data.get("from_") and data.get("to") and data["to"] <= data["from_"]:
            raise ValidationError("must be after from", "to")
        if data.get("province") and data.get("district") and \
                not data["district"].startswith(data["province"]):
            raise ValidationError("is not in the province asked for", "district")


class AuditQuery(Strict):
    as_of = Moment(metadata={"description": "the case as it stood at this time"})


class Counts(fields.Dict):
    def __init__(self, **kwargs):
        super().__init__(keys=fields.String(), values=fields.Integer(allow_none=True), **kwargs)


class Summary(Schema):
    """Suppressed cells are null (see `suppressed`)."""

    suppressed = fields.Boolean(required=True)
    filters = fields.Dict()
    period = fields.String()
    total = fields.Integer(allow_none=True, required=True)
    by_type = Counts()
    by_category = Counts()
    by_channel = Counts()
    by_status = Counts()
    by_province = Counts()
    by_district = Counts()
    by_office = Counts()
    by_period = Counts()
    gender = fields.Dict(allow_none=True, metadata={
        "description": "totals, by_office and by_province, each by gender; null when "
                       "intake could not be asked"})
    time_to_acknowledge = fields.Dict()
    time_to_resolve = fields.Dict()
    deadlines = fields.Dict()
    satisfaction = fields.Dict()
    evaluations = fields.Dict()
    escalations = fields.Dict()
    ombudsman = fields.Dict()


class AuditEntry(Schema):
    occurred_at = fields.String(required=True)
    store = fields.String(required=True)
    position = fields.Integer(required=True)
    stream_id = fields.String(required=True)
    sequence = fields.Integer(required=True)
    event_type = fields.String(required=True)
    actor = fields.Dict(required=True)
    data = fields.Dict(required=True)
    state = fields.Dict(required=True)


class History(Schema):
    tracking_code = fields.String(required=True)
    case_id = fields.String(required=True)
    as_of = fields.String(allow_none=True)
    state = fields.Dict(allow_none=True)
    events = fields.List(fields.Nested(AuditEntry))
