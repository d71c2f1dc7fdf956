"""What each log line says about the work in hand, and how lines are written.

Every line carries the request id of the HTTP request or RPC call being served (taken
from the caller's `X-Request-Id` when it is a sane one, else made, and passed on in the
context of every RPC call, so one request is followed from service to service), and
the event id and case id of the event a consumer or relay handles. So one case is
followed through the four services' logs by its case id, one request by its id.

Plain text is the default; `OURVOICE_LOG_FORMAT=json` writes one JSON object a line
(time, level, service, logger, message, and the ids there are).

Nothing secret or personal reaches a line: a bearer token anywhere in a message, and
the values of a query string (which can hold a token or someone's words), are written
as `…`. Addresses are pseudonyms already (see web.ClientPseudonyms)."""

from __future__ import annotations

import json
import logging
import re
import threading
import uuid
from datetime import UTC, datetime

from nameko.extensions import DependencyProvider

FORMATS = ("text", "json")
# Of the caller's: short, and only characters that cannot forge a log line or a header.
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
# Ids a line carries, in the order plain text writes them.
IDS = ("request_id", "event_id", "case_id")

# Per green thread: eventlet's monkey patching makes `threading.local` local to each
# green thread, so each worker, WSGI connection and follower has its own.
_local = threading.local()


def current() -> dict[str, str]:
    """The ids of the work the calling thread does now."""
    return {name: value for name in IDS if (value := getattr(_local, name, None))}


def bind(**ids: str | None) -> None:
    """The ids of the work this thread does from now on (None forgets one)."""
    for name, value in ids.items():
        setattr(_local, name, str(value) if value is not None else None)


def clear() -> None:
    for name in IDS:
        setattr(_local, name, None)


def request_id_from(given: str | None) -> str:
    """The caller's request id if it is sane, else a new one."""
    if given and SANE_REQUEST_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex


class LogContext(DependencyProvider):
    """Binds the ids of each worker's work to its green thread: the request id nameko
    carries in the worker's context (set by the HTTP edge, passed on by RPC), and for an
    event consumer the event's id and case id."""

    def worker_setup(self, worker_ctx) -> None:
        event = worker_ctx.args[0] if worker_ctx.args else None
        is_event = isinstance(event, dict) and "event_id" in event and "case_id" in event
        bind(request_id=worker_ctx.data.get("request_id"),
             event_id=event["event_id"] if is_event else None,
             case_id=event["case_id"] if is_event else None)

    def worker_teardown(self, worker_ctx) -> None:
        clear()


# -- what never reaches a line ----------------------------------------------------------
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[^\s\"',;]+")
_QUERY_VALUE = re.compile(r"([?&][^=&\s\"#?]+)=[^&\s\"#]*")


def redact(message: str) -> str:
    return _QUERY_VALUE.sub(r"\1=…", _BEARER.sub(r"\1 …", message))


class Redact(logging.Filter):
    """Formats the message, redacted, once: the formatters write it as it is."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = redact(record.getMessage())
        record.msg, record.args = message, None
        return True


class IdsFilter(logging.Filter):
    """Puts the thread's ids on the record, unless the caller gave them (`extra=`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in current().items():
            if getattr(record, name, None) is None:
                setattr(record, name, value)
        return True


class JsonLines(logging.Formatter):
    def __init__(self, service: str):
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in IDS:
            if (value := getattr(record, name, None)) is not None:
                line[name] = str(value)
        if record.exc_info:
            line["error"] = redact(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False)


class PlainText(logging.Formatter):
    """Today's lines, with the ids there are at the end."""

    def __init__(self, service: str):
        super().__init__(f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = redact(super().format(record))  # a traceback's lines too
        ids = " ".join(f"{name.removesuffix('_id')}={value}" for name in IDS
                       if (value := getattr(record, name, None)) is not None)
        if not ids:
            return text
        head, newline, rest = text.partition("\n")  # after the message, before a traceback
        return f"{head} [{ids}]{newline}{rest}"


def configure(service: str, log_format: str = "text", level: int = logging.INFO) -> None:
    """The process's one handler, on stderr, in the format asked for."""
    if log_format not in FORMATS:
        raise SystemExit(f"OURVOICE_LOG_FORMAT={log_format!r} is not a log format: one of "
                         f"{', '.join(FORMATS)} (unset means text)")
    handler = logging.StreamHandler()
    handler.addFilter(Redact())
    handler.addFilter(IdsFilter())
    handler.setFormatter(JsonLines(service) if log_format == "json" else PlainText(service))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
