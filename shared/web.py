"""The HTTP edge every service shares: one error format, JSON in and out (an endpoint
that speaks a standard's own formats, Open311's, says so with AnswerFormat), validation by
marshmallow schemas, health probes and `/metrics`, an OpenAPI document generated from the
same schemas that validate the requests, and the server underneath, which bounds what one
client can hold: time to send a request, the size of its body, and (for public reads) how
often. Each request gets a request id (see logcontext.py), returned in `X-Request-Id`,
and is counted by its route template and status."""

from __future__ import annotations

import functools
import gzip
import hashlib
import hmac
import inspect
import io
import json
import logging
import os
import re
import secrets
import socket
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import eventlet
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from eventlet import wsgi
from marshmallow import RAISE, Schema, ValidationError
from nameko.dependency_providers import Config
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import HttpOnlyProtocol, WebServer, WsgiApp
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.wrappers import Request, Response

from shared import access, logcontext, metrics
from shared.consumer import broker_answers, refused
from shared.db import TRANSIENT
from shared.limits import RateLimit, retry_after
from shared.settings import settings

log = logging.getLogger(__name__)


class Strict(Schema):
    """A request body or query: a field we do not know is an error the caller sees,
    never silently dropped (a misspelt field would otherwise lose what it carried)."""

    class Meta:
        unknown = RAISE


class HttpError(Exception):
    """An answer other than success, with errors as {"field": ["message", ...]}."""

    def __init__(self, status: int, errors: dict[str, list[str]],
                 headers: dict | None = None):
        super().__init__(status, errors)
        self.status = status
        self.errors = errors
        self.headers = headers


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


class AnswerFormat:
    """How an endpoint writes what its handler returns, and its errors. The handler
    returns one body (a dict or a list) whatever the format; the route it was called by
    picks the format. The default is this API's JSON and error format; a standard with
    formats of its own (Open311's JSON and XML) brings a subclass, and each of its
    endpoints gets one route per format: its path with the format's suffix."""

    name = "json"
    suffix = ""
    media_type = "application/json"
    # The errors' schema in the OpenAPI document, under this name among its components.
    errors_schema_name = "Errors"
    errors_schema: dict = {
        "type": "object",
        "properties": {"errors": {"type": "object", "additionalProperties": {
            "type": "array", "items": {"type": "string"}}}},
        "required": ["errors"],
    }

    def answer(self, status: int, body: Any, headers: dict | None = None) -> Response:
        return json_response(status, body, headers)

    def errors(self, status: int, errors: dict[str, list[str]],
               headers: dict | None = None) -> Response:
        return error_response(status, errors, headers)

    def answer_schema(self, schema: Any) -> Any:
        """The OpenAPI schema of a successful body, from the endpoint's response schema."""
        return schema


JSON = AnswerFormat()
# Where the server leaves the format of the route a request matched, for its refusals
# and its handler's answers.
FORMAT_KEY = "ourvoice.answer_format"


def answer_format(environ: dict) -> AnswerFormat:
    return environ.get(FORMAT_KEY, JSON)


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


# No body of this API nests deeper than a few levels; the JSON parser recurses once per
# level, so a body nested thousands deep would exhaust Python's stack before any schema.
MAX_JSON_DEPTH = 32
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def nested_too_deep(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether JSON text opens more than `limit` arrays or objects inside each other,
    found by counting brackets outside strings, without parsing (nor recursing)."""
    depth = 0
    for bracket in _NOT_BRACKET.sub("", _JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > limit:
            return True
    return False


def load_body(request: Request, schema: Schema) -> dict:
    """The request's JSON body, validated; anything else is a 400 with field errors."""
    try:
        # An empty body is an empty object: commands such as /acknowledge need nothing.
        text = request.get_data(as_text=True) or "{}"
    except ValueError:
        raise HttpError(400, {"_": ["the body must be JSON"]}) from None
    if nested_too_deep(text):
        raise HttpError(400, {"_": [f"the body nests deeper than {MAX_JSON_DEPTH} levels"]})
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError):
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


# -- the server: what one client may hold ---------------------------------------------
# Its settings (shared/settings.py) default to what a phone on a slow network meets with
# ease: a request of this API is a few kilobytes, sent within a second or two. Public
# reads per client address and minute are generous, since many citizens share a
# carrier's NAT address; like every limit in shared/limits.py, counted per instance.
# After refusing a body that is still coming, read and drop what arrives for this long
# before closing, so the refusal reaches the client instead of a connection reset.
LINGER_SECONDS = 1.0
# A file's body (an endpoint with `upload`) is larger and may come over a slow phone
# network: each piece of it is due within the read timeout, and the whole at no less
# than this rate on average (a 20 MiB photo at 16 KiB/s: about 21 minutes). It goes to a
# temporary file past SPOOL_BYTES, never whole into memory.
UPLOAD_MIN_BYTES_PER_SECOND = 16 * 1024
SPOOL_BYTES = 1 << 20


def spooled() -> tempfile.SpooledTemporaryFile:
    """Where an upload's bytes wait: memory up to SPOOL_BYTES, then a temporary file."""
    return tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)


class Refused(Exception):
    """A request answered by the server itself, before any worker sees it."""

    def __init__(self, response: Response):
        super().__init__(response.status)
        self.response = response


class ClientPseudonyms:
    """What the access log writes instead of a client's address: a keyed hash, the key
    random and replaced every day, kept nowhere. A day's lines from one client can be
    told apart from another's; no line leads back to the address, nor across days."""

    def __init__(self):
        self.day: date | None = None
        self.key = b""

    def of(self, address: str) -> str:
        today = datetime.now(UTC).date()
        if today != self.day:
            self.day, self.key = today, secrets.token_bytes(32)
        return hmac.new(self.key, address.encode(), hashlib.sha256).hexdigest()[:12]


# The client's pseudonym where eventlet writes its address; no X-Forwarded-For either.
ACCESS_LOG_FORMAT = ('client %(client_ip)s "%(request_line)s" %(status_code)s '
                     '%(body_length)s %(wall_seconds).3f')


class BoundedProtocol(HttpOnlyProtocol):
    """eventlet's HTTP/1.1 connection, with the request line and the headers each due
    within the read timeout (not merely a timeout per packet, which a client sending a
    byte a second never meets)."""

    unread_body = False

    def setup(self):
        super().setup()
        # A response larger than the write buffer (16 kB: a page of a queue) goes out in
        # two writes; with Nagle's algorithm the second waits for the client's delayed
        # ACK of the first, 40 ms on Linux. Each write here is a whole part of an answer.
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def _read_request_line(self):
        with eventlet.Timeout(self.server.read_timeout, TimeoutError("request line too slow")):
            return super()._read_request_line()

    def parse_request(self):
        with eventlet.Timeout(self.server.read_timeout, TimeoutError("headers too slow")):
            return super().parse_request()

    def get_client_address(self):
        host, _ = super().get_client_address()
        return self.server.pseudonyms.of(host), "-"

    def get_environ(self):
        environ = super().get_environ()
        environ["ourvoice.refuse_body"] = self._refuse_body
        return environ

    def _refuse_body(self) -> None:
        # The rest of the body is not read: the connection cannot carry another request.
        self.close_connection = 1
        self.unread_body = True

    def finish(self):
        if self.unread_body:
            try:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_WR)
                with eventlet.Timeout(LINGER_SECONDS, False):
                    while self.connection.recv(1 << 16):
                        pass
            except OSError:
                pass
        super().finish()


class BoundedWebServer(WebServer):
    """nameko's web server, reading each request whole before it takes a worker: a
    slow client holds a green thread of the connection, never one of the service's
    workers, so it cannot stall the others (nor /health)."""

    def setup(self):
        current = settings()
        self.read_timeout = current.http_read_timeout_seconds
        self.max_body_bytes = current.max_body_bytes
        self.public_reads = RateLimit(current.public_reads_per_minute)
        super().setup()

    def start(self):
        # nameko's, on a socket that is the process's alone: eventlet's default
        # (SO_REUSEPORT) lets a second process bind the same address and take a share of
        # its connections, so a second run of a service would answer beside the first
        # instead of failing "Address already in use".
        if not self._starting:
            self._starting = True
            self._sock = eventlet.listen(self.bind_addr, reuse_port=False)
            self._sock.settimeout(None)  # as nameko: kombu's issue 838
            self._serv = self.get_wsgi_server(self._sock, self.get_wsgi_app())
            self._gt = self.container.spawn_managed_thread(self.run)

    def get_wsgi_server(self, sock, wsgi_app, protocol=BoundedProtocol, debug=False):
        server = wsgi.Server(
            sock, sock.getsockname(), wsgi_app, protocol=protocol, debug=debug,
            log=logging.getLogger("nameko.web.server"), log_format=ACCESS_LOG_FORMAT,
            log_x_forwarded_for=False, keepalive=self.read_timeout,
            socket_timeout=self.read_timeout)
        server.read_timeout = self.read_timeout
        server.pseudonyms = ClientPseudonyms()
        return server

    def get_wsgi_app(self):
        return BoundedWsgiApp(self)

    def context_data_from_headers(self, request) -> dict:
        # nameko passes a worker's context on with every RPC call it makes: so does the
        # request id, from service to service.
        return {"request_id": request.environ["ourvoice.request_id"]}

    def admit(self, provider: HttpEntrypoint, environ: dict) -> None:
        """Refuse (Refused) what must not reach a worker; else leave the body, read
        whole, in the environ."""
        length = environ.get("CONTENT_LENGTH")
        if provider.upload is not None:
            limit = provider.upload()
            if length and int(length) > limit:
                raise self._refuse(environ, 413, f"the body is larger than {limit} bytes")
            environ["wsgi.input"] = self._spool_body(environ, limit)
            environ.pop("HTTP_TRANSFER_ENCODING", None)
            return
        if length and int(length) > self.max_body_bytes:
            raise self._refuse(environ, 413, f"the body is larger than {self.max_body_bytes} bytes")
        if provider.public_read and environ["REQUEST_METHOD"] in ("GET", "HEAD"):
            wait = self.public_reads.admit(environ.get("REMOTE_ADDR", ""))
            if wait is not None:
                seconds = retry_after(wait)
                raise Refused(provider.answers.errors(
                    429, {"_": [f"too many requests from this address; try again in {seconds} s"]},
                    headers={"Retry-After": seconds}))
        body = self._read_body(environ)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("HTTP_TRANSFER_ENCODING", None)

    def _read_body(self, environ: dict) -> bytes:
        stream, parts, size = environ["wsgi.input"], [], 0
        expected = int(environ.get("CONTENT_LENGTH") or 0)
        chunked = environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked"
        try:
            with eventlet.Timeout(self.read_timeout, TimeoutError("body too slow")):
                while part := stream.read(min(1 << 16, self.max_body_bytes + 1 - size)):
                    size += len(part)
                    if size > self.max_body_bytes:  # only a chunked body gets here
                        raise self._refuse(
                            environ, 413, f"the body is larger than {self.max_body_bytes} bytes")
                    parts.append(part)
        except TimeoutError:
            raise self._refuse(environ, 408, f"the body did not arrive within "
                                             f"{self.read_timeout:g} s") from None
        except (OSError, ValueError):  # the client went away, or a chunk size is no number
            raise self._refuse(environ, 400, "the body ended before it was complete") from None
        if not chunked and size < expected:
            raise self._refuse(environ, 400, "the body ended before it was complete")
        return b"".join(parts)

    def _spool_body(self, environ: dict, limit: int):
        """An upload's body in a spooled temporary file, refused (413) as soon as it
        passes `limit`, without reading the rest."""
        stream, sink, size = environ["wsgi.input"], spooled(), 0
        expected = int(environ.get("CONTENT_LENGTH") or 0)
        chunked = environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked"
        deadline = time.monotonic() + self.read_timeout + (expected or limit) \
            / UPLOAD_MIN_BYTES_PER_SECOND
        try:
            while True:
                left = max(0.01, min(self.read_timeout, deadline - time.monotonic()))
                with eventlet.Timeout(left, TimeoutError("body too slow")):
                    part = stream.read(min(1 << 16, limit + 1 - size))
                if not part:
                    break
                size += len(part)
                if size > limit:  # only a chunked body gets here
                    sink.close()
                    raise self._refuse(environ, 413, f"the body is larger than {limit} bytes")
                sink.write(part)
                if time.monotonic() > deadline:
                    raise TimeoutError("body too slow")
        except TimeoutError:
            sink.close()
            raise self._refuse(environ, 408, "the body did not arrive in time") from None
        except (OSError, ValueError):
            sink.close()
            raise self._refuse(environ, 400, "the body ended before it was complete") from None
        if not chunked and size < expected:
            sink.close()
            raise self._refuse(environ, 400, "the body ended before it was complete")
        sink.seek(0)
        environ["CONTENT_LENGTH"] = str(size)
        return sink

    @staticmethod
    def _refuse(environ: dict, status: int, message: str) -> Refused:
        environ["ourvoice.refuse_body"]()
        return Refused(answer_format(environ).errors(status, {"_": [message]}))


class BoundedWsgiApp(WsgiApp):
    def __call__(self, environ, start_response):
        request_id = logcontext.request_id_from(environ.get("HTTP_X_REQUEST_ID"))
        environ["ourvoice.request_id"] = request_id
        # Bound in this connection's green thread too, so the access line carries it.
        logcontext.clear()
        logcontext.bind(request_id=request_id)
        started = time.perf_counter()
        route = "unmatched"
        adapter = self.url_map.bind_to_environ(environ)
        try:
            provider, values = adapter.match()
            route = provider.template
            environ[FORMAT_KEY] = provider.answers
            self.server.admit(provider, environ)
            request = Request(environ, shallow=True)
            request.path_values = values
            answer = provider.handle_request(request)
        except HTTPException as exc:
            answer = exc
        except Refused as refusal:
            answer = refusal.response

        def answering(status, headers, exc_info=None):
            metrics.request_answered(route, environ["REQUEST_METHOD"], int(status.split()[0]),
                                     time.perf_counter() - started)
            return start_response(status, [*headers, ("X-Request-Id", request_id)], exc_info)

        return answer(environ, answering)


def route_template(rule: str) -> str:
    """A werkzeug rule as the path template OpenAPI and the metrics name it by:
    `/v1/cases/<string:tracking_code>` is `/v1/cases/{tracking_code}`."""
    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule)


class HttpEntrypoint(HttpRequestHandler):
    """nameko's HTTP entrypoint on the bounded server; `public_read` marks what anyone
    may read, limited per client address; `answers` is the format of the route's
    answers and errors, the server's own refusals included."""

    server = BoundedWebServer()

    def __init__(self, method: str, url: str, *, public_read: bool = False,
                 upload=None, answers: AnswerFormat = JSON, **kwargs):
        self.public_read = public_read
        self.upload = upload  # for a file's body: () -> the most bytes it may have
        self.answers = answers
        self.template = route_template(url)
        super().__init__(method, url, **kwargs)


http = HttpEntrypoint.decorator
# What a catch-all route answers: every method any endpoint has.
ANY_METHOD = "GET,POST,PUT,PATCH,DELETE"


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
    upload=None,
    gone=None,
    produces: tuple[str, ...] = (),
    signed_body: type[Schema] | None = None,
    formats: tuple[AnswerFormat, ...] = (JSON,),
):
    """A nameko HTTP entrypoint, speaking JSON unless told otherwise. `path` is written
    as in OpenAPI (`/v1/cases/{tracking_code}`). `allow` says who may call it: `access.PUBLIC`, role
    names, or rules such as `access.OfficeInPath()`; left empty, it refuses everyone.
    The method gets the validated body (if any) as `payload`, the caller as `principal`
    (if it takes one), and returns the response body or a werkzeug Response.

    `query` validates the query string (passed as `query`), `form` a form-encoded body
    (passed as `payload`); `errors` documents the other answers the endpoint gives
    ({409: "why"}), `headers` the optional request headers it reads ({name: JSON schema}).

    `upload` (a function giving the most bytes) makes the body a file: sent as it is or
    as multipart/form-data with one field `file`, spooled to a temporary file by the
    server, never whole in memory. `gone(service, path_args)` is asked before anyone is
    authenticated and returns why what the path names is gone for good (a 410), or None:
    an erased file is gone whoever asks, even with a token that erasure revoked.
    `produces` lists the media types a successful answer that is not JSON may have.
    `signed_body` documents a body the endpoint reads itself, as it came, because its
    signature covers the bytes (a webhook's): it is checked before anything is parsed.
    `formats` are the formats the endpoint answers in (AnswerFormat), each at `path` with
    the format's suffix, from the same body the method returns: its errors too, so a
    route's answers all speak one format."""

    public_read = access.PUBLIC in allow and method == "GET"
    body_schema = body() if body else None
    query_schema = query() if query else None
    form_schema = form() if form else None
    public = access.PUBLIC in allow

    def decorate(fn):
        wants_principal = "principal" in inspect.signature(fn).parameters

        @functools.wraps(fn)
        def handle(self, request: Request, **path_args):
            answers = answer_format(request.environ)
            try:
                why_gone = gone(self, path_args) if gone is not None else None
                if why_gone:
                    raise HttpError(410, {"_": [why_gone]})
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
                return answers.errors(error.status, error.errors, error.headers)
            except TRANSIENT + (ConnectionError,):
                # The database or broker is away (a restart, a failover): nothing was
                # recorded, and the client may simply try again.
                log.warning("%s %s: a dependency is unavailable", method, path, exc_info=True)
                return answers.errors(503, {"_": ["temporarily unavailable; try again"]},
                                      headers={"Retry-After": "1"})
            except Exception:
                log.exception("%s %s failed", method, path)
                return answers.errors(500, {"_": ["internal error; it has been logged"]})
            if isinstance(result, Response):
                return result
            return answers.answer(status, result)

        handle.openapi = [{
            "method": method.lower(),
            "path": path + answers.suffix,
            # One operation per format: the first keeps the method's name.
            "operation_id": fn.__name__ if n == 0 else f"{fn.__name__}_{answers.name}",
            "format": answers,
            "summary": summary or _summary(fn.__doc__),
            "description": "" if summary else _description(fn.__doc__),
            "body": body,
            "response": response,
            "status": status,
            "public": public,
            "query": query,
            "form": form,
            "errors": errors or {},
            "headers": headers or {},
            "upload": upload is not None,
            "produces": produces,
            "signed_body": signed_body,
        } for n, answers in enumerate(formats)]
        for answers in formats:
            rule = re.sub(r"{(\w+)}", r"<string:\1>", path + answers.suffix)
            handle = http(method, rule, public_read=public_read, upload=upload,
                          answers=answers)(handle)
        return handle

    return decorate


def _paragraphs(docstring: str | None) -> list[str]:
    """A docstring's paragraphs, each on one line (the source wraps them at its width)."""
    text = inspect.cleandoc(docstring or "")
    return [" ".join(paragraph.split()) for paragraph in text.split("\n\n") if paragraph.strip()]


_SENTENCE_END = re.compile(r"(?<=\.)\s+(?=[A-Z])")


def _summary(docstring: str | None) -> str:
    """The first sentence of a handler's docstring: its operation's summary."""
    paragraphs = _paragraphs(docstring)
    return _SENTENCE_END.split(paragraphs[0], maxsplit=1)[0] if paragraphs else ""


def _description(docstring: str | None) -> str:
    """What a handler's docstring says after its first sentence."""
    text = "\n\n".join(_paragraphs(docstring))
    return text[len(_summary(docstring)):].strip()


def _admit(service, request: Request, allow: tuple, path_args: dict) -> access.Principal:
    """401 unless the token is valid, 403 unless one of the endpoint's rules lets it in."""
    with service.db.transaction() as cursor:
        try:
            principal = access.authenticate(cursor, request.headers.get("Authorization"))
        except access.Unauthenticated as refusal:
            raise HttpError(401, {"Authorization": [str(refusal)]}) from None
    if not access.allowed(allow, principal, path_args):
        raise HttpError(403, {"Authorization": [f"{access.someone(principal.role)} may not do this here"]})
    return principal


def forbidden(message: str) -> HttpError:
    return HttpError(403, {"Authorization": [message]})


HTTP_METHODS = ("get", "put", "post", "patch", "delete")


def openapi_document(service_class: type, title: str) -> dict:
    """OpenAPI 3 for every @endpoint of a service, from its marshmallow schemas: one
    operation per path and format."""
    spec = APISpec(title=title, version="1.0.0", openapi_version="3.0.3",
                   plugins=[MarshmallowPlugin()])
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    error_schemas: set[str] = set()
    paths: dict[str, dict] = {}
    for name in sorted(dir(service_class)):
        for route in getattr(getattr(service_class, name), "openapi", None) or ():
            answers: AnswerFormat = route["format"]
            if answers.errors_schema_name not in error_schemas:
                spec.components.schema(answers.errors_schema_name, answers.errors_schema)
                error_schemas.add(answers.errors_schema_name)
            paths.setdefault(route["path"], {})[route["method"]] = _operation(route)
    # In the order a reader looks for them: by path, then by method as HTTP lists them.
    for path in sorted(paths):
        operations = paths[path]
        spec.path(path=path, operations={method: operations[method] for method in HTTP_METHODS
                                         if method in operations})
    return spec.to_dict()


def _operation(route: dict) -> dict[str, Any]:
    """One endpoint's operation in one format, from what its decorator recorded."""
    answers: AnswerFormat = route["format"]
    error = {"content": {answers.media_type: {"schema": {
        "$ref": f"#/components/schemas/{answers.errors_schema_name}"}}}}
    operation: dict[str, Any] = {
        "summary": route["summary"],
        "operationId": route["operation_id"],
        "responses": {str(route["status"]): {"description": "success"}},
    }
    if route.get("description"):
        operation["description"] = route["description"]
    if route["response"] is not None:
        operation["responses"][str(route["status"])]["content"] = {
            answers.media_type: {"schema": answers.answer_schema(route["response"])}}
    if route.get("produces"):
        operation["responses"][str(route["status"])]["content"] = {
            media_type: {"schema": {"type": "string", "format": "binary"}}
            for media_type in route["produces"]}
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
    if route["body"] is not None or route.get("signed_body") is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {
                "schema": route["body"] or route["signed_body"]}},
        }
    if route.get("signed_body") is not None:
        # Read only once its signature holds: without one, any body is a 401.
        operation["x-signed-body"] = True
    if route.get("form") is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/x-www-form-urlencoded": {"schema": route["form"]}},
        }
    if route.get("upload"):
        binary = {"type": "string", "format": "binary"}
        operation["requestBody"] = {"required": True, "content": {
            "application/octet-stream": {"schema": binary},
            "multipart/form-data": {"schema": {
                "type": "object", "properties": {"file": binary}, "required": ["file"]}},
        }}
    if route["body"] is not None or route.get("form") is not None or route.get("query") \
            or route.get("headers") or route.get("upload") or route.get("signed_body"):
        operation["responses"]["400"] = {"description": "invalid input", **error}
    if not route["public"]:
        operation["security"] = [{"bearer": []}]
        operation["responses"]["401"] = {"description": "no valid token", **error}
        operation["responses"]["403"] = {"description": "not allowed", **error}
    operation["responses"]["404"] = {"description": "not found", **error}
    if route["body"] is not None or route.get("form") is not None or route.get("upload") \
            or route.get("signed_body"):
        operation["responses"]["413"] = {"description": "the body is too large", **error}
    if route["public"] and route["method"] == "get":
        operation["responses"]["429"] = {
            "description": "too many reads from this address", **error, "headers": RETRY_AFTER}
    for code, description in route.get("errors", {}).items():
        operation["responses"][str(code)] = {"description": description, **error}
        if code == 429:
            operation["responses"]["429"]["headers"] = RETRY_AFTER
    return operation


# Every 429 says when to ask again.
RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}


# -- pages: files served as written, to a browser -------------------------------------
PAGE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Asked again each time (answered 304 while unchanged), so a new version is used at once.
    "Cache-Control": "no-cache",
}


@functools.cache
def _gzipped(body: bytes) -> bytes:
    return gzip.compress(body, compresslevel=9, mtime=0)


def page_file(request: Request, body: bytes, mimetype: str, policy: str) -> Response:
    """One file of a page we serve (the staff console, the API's page), under its content
    security policy; compressed for a browser that takes it (a phone on a slow network
    loads a third), and 304 while the browser's copy is current."""
    tag = hashlib.sha256(body).hexdigest()[:32]
    headers = {**PAGE_HEADERS, "Content-Security-Policy": policy, "Vary": "Accept-Encoding"}
    if request.accept_encodings["gzip"]:
        body, tag = _gzipped(body), f"{tag}-gzip"
        headers["Content-Encoding"] = "gzip"
    response = Response(body, mimetype=mimetype, headers=headers)
    response.set_etag(tag)
    return response.make_conditional(request)


# The API's page, the same for every service: it draws the document of the service that
# serves it, asks nothing of any other origin and runs no inline script or style.
API_DOCS = Path(__file__).resolve().parent / "apidocs"
API_DOCS_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; "
                   "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; "
                   "frame-ancestors 'none'")


@functools.cache
def _api_docs_file(name: str) -> bytes:
    return (API_DOCS / name).read_bytes()


def _problems(db, amqp_uri: str) -> dict[str, list[str]]:
    """What of the database and the broker does not answer. The broker is asked on the
    process's kept connection: a probe never opens one of its own."""
    problems: dict[str, list[str]] = {}
    try:
        db.ping()
    except Exception as error:
        problems["database"] = [str(error)[:200] or type(error).__name__]
    try:
        broker_answers(amqp_uri)
    except Exception as error:
        problems["broker"] = [str(error)[:200] or type(error).__name__]
    return problems


def health(db, amqp_uri: str) -> Response:
    """200 when both the database and the broker answer, else 503 saying which did not."""
    problems = _problems(db, amqp_uri)
    if problems:
        return error_response(503, problems)
    # Events dead-lettered because the broker did not vouch for their source: forgeries.
    return json_response(200, {"status": "ok", "refused_events": refused["events"]})


def readiness(db, amqp_uri: str) -> Response:
    """200 when the database and the broker answer and every relay of the process is
    less than OURVOICE_READY_MAX_RELAY_LAG events behind its store; else 503 naming what
    is wrong."""
    limit = settings().ready_max_relay_lag
    problems = _problems(db, amqp_uri)
    lags: dict[str, int] = {}
    if "database" not in problems:
        try:
            lags = metrics.relay_lags()
        except Exception as error:
            problems["relay"] = [f"its lag could not be read: {str(error)[:200]}"]
        behind = [f"{store}: {lag} events stored and not yet published (at most {limit:g})"
                  for store, lag in sorted(lags.items()) if lag >= limit]
        if behind:
            problems["relay"] = behind
    if problems:
        return error_response(503, problems)
    return json_response(200, {"status": "ready", "relay_lag": lags})


class HealthAndSpec:
    """Mixed into every service: the health probes, GET /metrics, GET /openapi.json and
    the page that shows it (GET /docs), the ids on its log lines."""

    title = "Our Voice"
    config = Config()
    log_context = logcontext.LogContext()

    @endpoint("GET", "/health", allow=(access.PUBLIC,),
              summary="200 when broker and database are reachable",
              errors={503: "the database or the broker does not answer"})
    def get_health(self, request):
        return health(self.db, self.config["AMQP_URI"])

    @endpoint("GET", "/health/live", allow=(access.PUBLIC,),
              summary="200 while the process answers (it asks nothing of anyone), naming "
                      "the service and its process id")
    def get_live(self, request):
        # Who answers: a supervisor counts its child as up only when the answer is the
        # child's own, not that of another process on the same address.
        return {"status": "alive", "service": self.name, "pid": os.getpid()}

    @endpoint("GET", "/health/ready", allow=(access.PUBLIC,),
              summary="200 when the service can do its work: database and broker answer, "
                      "its relays are not far behind",
              errors={503: "what is not ready: database, broker or relay"})
    def get_ready(self, request):
        return readiness(self.db, self.config["AMQP_URI"])

    @endpoint("GET", "/metrics", allow=(access.PUBLIC,),
              summary="Prometheus metrics, in the text exposition format",
              errors={401: "OURVOICE_METRICS_TOKEN is set and the bearer token is not it",
                      404: "OURVOICE_METRICS is off: nothing is counted"})
    def get_metrics(self, request):
        if not metrics.recording:
            # Not an empty page: a scrape of nothing must not look like a quiet service.
            return error_response(404, {"_": ["metrics are off on this service "
                                              "(OURVOICE_METRICS=off)"]})
        # Counts only, nothing of a person or a case: open by default, like /health. An
        # operator whose service port faces the public sets a token for Prometheus.
        token = settings().metrics_token or ""
        given = request.headers.get("Authorization", "")
        if token and not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return error_response(401, {"Authorization": ["the metrics token is required"]})
        body, content_type = metrics.exposition()
        return Response(body, status=200, content_type=content_type)

    @endpoint("GET", "/openapi.json", allow=(access.PUBLIC,), summary="this document")
    def get_openapi(self, request):
        return openapi_document(type(self), self.title)

    @endpoint("GET", "/docs", allow=(access.PUBLIC,), produces=("text/html",),
              summary="this document as a page to read: every operation, its parameters, "
                      "body and answers")
    def get_docs(self, request):
        return page_file(request, _api_docs_file("index.html"), "text/html", API_DOCS_POLICY)

    @endpoint("GET", "/docs/docs.js", allow=(access.PUBLIC,), produces=("text/javascript",),
              summary="the script of the API's page (served as written)")
    def get_docs_script(self, request):
        return page_file(request, _api_docs_file("docs.js"), "text/javascript", API_DOCS_POLICY)

    @endpoint("GET", "/docs/docs.css", allow=(access.PUBLIC,), produces=("text/css",),
              summary="the style sheet of the API's page")
    def get_docs_style(self, request):
        return page_file(request, _api_docs_file("docs.css"), "text/css", API_DOCS_POLICY)

    @http(ANY_METHOD, "/<path:unknown>", public_read=True)
    def no_such_path(self, request, unknown):
        # Matched only when no other route does: even a wrong URL gets the JSON error.
        return error_response(404, {"_": [f"no such resource: /{unknown}"]})
