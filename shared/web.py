"""The HTTP edge every service shares: one error format, JSON in and out, validation by
marshmallow schemas, `/health`, and an OpenAPI document generated from the same schemas
that validate the requests."""

from __future__ import annotations

import functools
import inspect
import json
import logging
import re
from typing import Any

import kombu
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import RAISE, Schema, ValidationError
from nameko.dependency_providers import Config
from nameko.web.handlers import http
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Request, Response

from shared import access
from shared.consumer import refused
from shared.db import TRANSIENT

log = logging.getLogger(__name__)


class Strict(Schema):
    """A request body or query: a field we do not know is an error the caller sees,
    never silently dropped (a misspelt field would otherwise lose what it carried)."""

    class Meta:
        unknown = RAISE


class HttpError(Exception):
    """An answer other than success, with errors as {"field": ["message", ...]}."""

    def __init__(self, status: int, errors: dict[str, list[str]]):
        super().__init__(status, errors)
        self.status = status
        self.errors = errors


def not_found(what: str) -> HttpError:
    return HttpError(404, {"_": [f"{what} not found"]})


def json_response(status: int, body: Any, headers: dict | None = None) -> Response:
    return Response(
        json.dumps(body, ensure_ascii=False, default=str),
        status=status,
        mimetype="application/json",
        headers=headers,
    )


def error_response(status: int, errors: dict[str, list[str]],
                   headers: dict | None = None) -> Response:
    return json_response(status, {"errors": errors}, headers)


def _field_errors(messages: Any) -> dict[str, list[str]]:
    """marshmallow's nested messages, flattened to dotted field names."""
    if isinstance(messages, list):
        return {"_": [str(m) for m in messages]}
    flat: dict[str, list[str]] = {}
    for field, value in messages.items():
        name = "_" if field == "_schema" else str(field)
        if isinstance(value, dict):
            for sub, sub_messages in _field_errors(value).items():
                key = name if sub == "_" else f"{name}.{sub}"
                flat.setdefault(key, []).extend(sub_messages)
        else:
            flat.setdefault(name, []).extend(str(m) for m in value)
    return flat


def field_errors(error: ValidationError) -> dict[str, list[str]]:
    """A marshmallow error as the `errors` of an answer, for checks made in a handler."""
    return _field_errors(error.messages)


def load_body(request: Request, schema: Schema) -> dict:
    """The request's JSON body, validated; anything else is a 400 with field errors."""
    try:
        # An empty body is an empty object: commands such as /acknowledge need nothing.
        payload = json.loads(request.get_data(as_text=True) or "{}")
    except ValueError:
        raise HttpError(400, {"_": ["the body must be JSON"]}) from None
    if not isinstance(payload, dict):
        raise HttpError(400, {"_": ["the body must be a JSON object"]})
    try:
        return schema.load(payload)
    except ValidationError as error:
        raise HttpError(400, _field_errors(error.messages)) from None


def _single_values(values, where: str) -> dict:
    """A query string or form as a plain dict; a name given twice is a 400."""
    repeated = [name for name, given in values.lists() if len(given) > 1]
    if repeated:
        raise HttpError(400, {name: [f"given more than once in the {where}"] for name in repeated})
    return values.to_dict()


def load_query(request: Request, schema: Schema) -> dict:
    """The query string, validated like a body: unknown or bad parameters are a 400."""
    try:
        return schema.load(_single_values(request.args, "query"))
    except ValidationError as error:
        raise HttpError(400, _field_errors(error.messages)) from None


def load_form(request: Request, schema: Schema) -> dict:
    """A form-encoded body (as Open311 clients send), validated by a schema."""
    try:
        form = request.form
    except RequestEntityTooLarge:
        raise HttpError(413, {"_": ["the form is too large"]}) from None
    try:
        return schema.load(_single_values(form, "form"))
    except ValidationError as error:
        raise HttpError(400, _field_errors(error.messages)) from None


def endpoint(
    method: str,
    path: str,
    *,
    allow: tuple = (),
    body: type[Schema] | None = None,
    response: type[Schema] | Schema | None = None,
    status: int = 200,
    summary: str = "",
    query: type[Schema] | None = None,
    form: type[Schema] | None = None,
    errors: dict[int, str] | None = None,
    headers: dict[str, dict] | None = None,
):
    """A nameko HTTP entrypoint speaking JSON. `path` is written as in OpenAPI
    (`/v1/cases/{tracking_code}`). `allow` says who may call it: `access.PUBLIC`, role
    names, or rules such as `access.OfficeInPath()`; left empty, it refuses everyone.
    The method gets the validated body (if any) as `payload`, the caller as `principal`
    (if it takes one), and returns the response body or a werkzeug Response.

    `query` validates the query string (passed as `query`), `form` a form-encoded body
    (passed as `payload`); `errors` documents the other answers the endpoint gives
    ({409: "why"}), `headers` the optional request headers it reads ({name: JSON schema})."""

    rule = re.sub(r"{(\w+)}", r"<string:\1>", path)
    body_schema = body() if body else None
    query_schema = query() if query else None
    form_schema = form() if form else None
    public = access.PUBLIC in allow

    def decorate(fn):
        wants_principal = "principal" in inspect.signature(fn).parameters

        @functools.wraps(fn)
        def handle(self, request: Request, **path_args):
            try:
                principal = None if public else _admit(self, request, allow, path_args)
                if wants_principal:
                    path_args["principal"] = principal
                if body_schema is not None:
                    path_args["payload"] = load_body(request, body_schema)
                if form_schema is not None:
                    path_args["payload"] = load_form(request, form_schema)
                if query_schema is not None:
                    path_args["query"] = load_query(request, query_schema)
                result = fn(self, request, **path_args)
            except HttpError as error:
                return error_response(error.status, error.errors)
            except TRANSIENT + (ConnectionError,):
                # The database or broker is away (a restart, a failover): nothing was
                # recorded, and the client may simply try again.
                log.warning("%s %s: a dependency is unavailable", method, path, exc_info=True)
                return error_response(503, {"_": ["temporarily unavailable; try again"]},
                                      headers={"Retry-After": "1"})
            except Exception:
                log.exception("%s %s failed", method, path)
                return error_response(500, {"_": ["internal error; it has been logged"]})
            if isinstance(result, Response):
                return result
            return json_response(status, result)

        handle.openapi = {
            "method": method.lower(),
            "path": path,
            "summary": summary or (fn.__doc__ or "").strip().split("\n")[0],
            "body": body,
            "response": response,
            "status": status,
            "public": public,
            "query": query,
            "form": form,
            "errors": errors or {},
            "headers": headers or {},
        }
        return http(method, rule)(handle)

    return decorate


def _admit(service, request: Request, allow: tuple, path_args: dict) -> access.Principal:
    """401 unless the token is valid, 403 unless one of the endpoint's rules lets it in."""
    with service.db.transaction() as cursor:
        try:
            principal = access.authenticate(cursor, request.headers.get("Authorization"))
        except access.Unauthenticated as refusal:
            raise HttpError(401, {"Authorization": [str(refusal)]}) from None
    if not access.allowed(allow, principal, path_args):
        raise HttpError(403, {"Authorization": [f"a {principal.role} may not do this here"]})
    return principal


def forbidden(message: str) -> HttpError:
    return HttpError(403, {"Authorization": [message]})


def openapi_document(service_class: type, title: str) -> dict:
    """OpenAPI 3 for every @endpoint of a service, from its marshmallow schemas."""
    spec = APISpec(title=title, version="1.0.0", openapi_version="3.0.3",
                   plugins=[MarshmallowPlugin()])
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    spec.components.schema("Errors", {
        "type": "object",
        "properties": {"errors": {"type": "object", "additionalProperties": {
            "type": "array", "items": {"type": "string"}}}},
        "required": ["errors"],
    })
    paths: dict[str, dict] = {}
    for name in sorted(dir(service_class)):
        route = getattr(getattr(service_class, name), "openapi", None)
        if route is None:
            continue
        error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Errors"}}}}
        operation: dict[str, Any] = {
            "summary": route["summary"],
            "operationId": name,
            "responses": {str(route["status"]): {"description": "success"}},
        }
        if route["response"] is not None:
            operation["responses"][str(route["status"])]["content"] = {
                "application/json": {"schema": route["response"]}}
        params = re.findall(r"{(\w+)}", route["path"])
        parameters: list[dict] = [
            {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
            for p in params
        ]
        parameters += [{"name": name, "in": "header", "required": False, "schema": schema}
                       for name, schema in route.get("headers", {}).items()]
        if route.get("query") is not None:
            parameters.append({"in": "query", "schema": route["query"]})
        if parameters:
            operation["parameters"] = parameters
        if route["body"] is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": route["body"]}},
            }
        if route.get("form") is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/x-www-form-urlencoded": {"schema": route["form"]}},
            }
        if route["body"] is not None or route.get("form") is not None or route.get("query") \
                or route.get("headers"):
            operation["responses"]["400"] = {"description": "invalid input", **error}
        if not route["public"]:
            operation["security"] = [{"bearer": []}]
            operation["responses"]["401"] = {"description": "no valid token", **error}
            operation["responses"]["403"] = {"description": "not allowed", **error}
        operation["responses"]["404"] = {"description": "not found", **error}
        for code, description in route.get("errors", {}).items():
            operation["responses"][str(code)] = {"description": description, **error}
            if code == 429:
                operation["responses"]["429"]["headers"] = {"Retry-After": {
                    "description": "seconds to wait", "schema": {"type": "integer"}}}
        paths.setdefault(route["path"], {})[route["method"]] = operation
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()


def health(db, amqp_uri: str) -> Response:
    """200 when both the database and the broker answer, else 503 saying which did not."""
    problems: dict[str, list[str]] = {}
    try:
        db.ping()
    except Exception as error:
        problems["database"] = [str(error)[:200] or type(error).__name__]
    try:
        with kombu.Connection(amqp_uri, connect_timeout=2) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as error:
        problems["broker"] = [str(error)[:200] or type(error).__name__]
    if problems:
        return error_response(503, problems)
    # Events dead-lettered because the broker did not vouch for their source: forgeries.
    return json_response(200, {"status": "ok", "refused_events": refused["events"]})


class HealthAndSpec:
    """Mixed into every service: GET /health and GET /openapi.json."""

    title = "Our Voice"
    config = Config()

    @endpoint("GET", "/health", allow=(access.PUBLIC,),
              summary="200 when broker and database are reachable",
              errors={503: "the database or the broker does not answer"})
    def get_health(self, request):
        return health(self.db, self.config["AMQP_URI"])

    @endpoint("GET", "/openapi.json", allow=(access.PUBLIC,), summary="this document")
    def get_openapi(self, request):
        return openapi_document(type(self), self.title)

    @http("GET,POST,PUT,PATCH,DELETE", "/<path:unknown>")
    def no_such_path(self, request, unknown):
        # Matched only when no other route does: even a wrong URL gets the JSON error.
        return error_response(404, {"_": [f"no such resource: /{unknown}"]})
