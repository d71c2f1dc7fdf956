"""Every setting of Our Voice, in one place: its variable, what it accepts, its default
(one that works on a developer's machine), whether it is a secret, which programs read it
and what it means.

A program reads them all once, as it starts (`settings()`), and a wrong value stops it
there with the variable's name and what it accepts, instead of a traceback at the first
request that needs it. `ourvoice config check` prints what is in effect;
`python -m shared.settings --markdown` prints the README's table of them.

PostgreSQL settings use eventsourcing's own POSTGRES_* names, so that the event stores
and our read models read the same variables."""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import math
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from shared.operations import Command

ROOT = Path(__file__).resolve().parents[1]

# Who reads a setting: the four services, and `ourvoice` (setup and the operators'
# commands; in Compose the `setup` container).
INTAKE, ROUTING, NOTIFICATIONS, REPORTING, CLI = (
    "intake", "routing", "notifications", "reporting", "ourvoice")
SERVICES = (INTAKE, ROUTING, NOTIFICATIONS, REPORTING)
EVERYONE = (*SERVICES, CLI)

DEFAULT, ENVIRONMENT = "default", "environment"  # where a value came from
MASK = "********"


# -- what a setting accepts ------------------------------------------------------------
# Each kind turns the text of a variable into its value, or raises ValueError: bare, for
# "OURVOICE_SWEEP_SECONDS must be a number above 0, not 'fast'", or saying why not after
# the variable's name and value ("OURVOICE_ENV='prod' is not a mode: ...").

@dataclass(frozen=True)
class Kind:
    accepts: str  # in words, for the refusal, the README and `ourvoice config check`
    parse: Callable[[str], Any]


def _whole(minimum: int) -> Kind:
    def convert(text: str) -> int:
        if not re.fullmatch(r"\s*\d+\s*", text) or int(text) < minimum:
            raise ValueError
        return int(text)
    return Kind(f"a whole number of at least {minimum}", convert)


def _number(minimum: float, *, above: bool = False) -> Kind:
    def convert(text: str) -> float:
        try:
            number = float(text)
        except ValueError:
            raise ValueError from None
        if not math.isfinite(number) or number < minimum or (above and number == minimum):
            raise ValueError
        return number
    return Kind(f"a number {'above' if above else 'of at least'} {minimum:g}", convert)


def _one_of(*choices: str, refused: str = "") -> Kind:
    accepts = "exactly " + " or ".join(repr(c) for c in choices)

    def convert(text: str) -> str:
        if text not in choices:
            raise ValueError(f"{refused}: it must be {accepts}" if refused else "")
        return text
    return Kind(accepts, convert)


YES, NO = ("yes", "y", "true", "1", "on"), ("no", "n", "false", "0", "off")


def _switch(text: str) -> bool:
    if text.strip().lower() not in (*YES, *NO):
        raise ValueError
    return text.strip().lower() in YES


def _duration(text: str) -> timedelta:
    found = re.fullmatch(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?",
                         text.strip())
    if found is None or text.strip() in ("P", "PT") or text.strip().endswith("T"):
        raise ValueError
    days, hours, minutes, seconds = (float(part or 0) for part in found.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def _address(text: str) -> str:
    host, colon, port = text.rpartition(":")
    # Port 0 is the kernel's choice: replicas sharing one network each get a port of
    # their own (the health check finds it).
    if not colon or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError
    return text


def _url(*schemes: str) -> Kind:
    def convert(text: str) -> str:
        parts = urlsplit(text)
        if parts.scheme not in schemes or not parts.hostname:
            raise ValueError
        return text
    article = "an" if schemes[0][0] in "aeiou" else "a"
    return Kind(f"{article} {' or '.join(f'{s}://' for s in schemes)} URL", convert)


def broker_nodes(text: str) -> list[str]:
    """AMQP_URI's URLs: one broker, or the nodes of one RabbitMQ cluster separated by `;`,
    which kombu tries in turn (the next one when a node cannot be reached)."""
    return [url.strip() for url in text.split(";") if url.strip()]


def _broker_urls(text: str) -> str:
    nodes = broker_nodes(text)
    if not nodes:
        raise ValueError
    for url in nodes:
        _url("amqp", "amqps").parse(url)
    # One cluster: the operator's login and the virtual host are the same on every node
    # (`ourvoice setup` and the commands use the first node's).
    if len({urlsplit(url)._replace(netloc=urlsplit(url).netloc.rpartition("@")[0]) for url
            in nodes}) > 1:
        raise ValueError("lists nodes with different logins, schemes or virtual hosts: the "
                         "nodes of one cluster share them")
    return ";".join(nodes)


def masked_urls(text: str) -> str:
    """URLs as they may be printed: each one's password masked (AMQP_URI may list
    several, and nameko's own masking sees only the first)."""
    shown = []
    for url in text.split(";"):
        parts = urlsplit(url)
        if parts.password:
            host = parts.netloc.rpartition("@")[2]
            url = urlunsplit(parts._replace(netloc=f"{parts.username}:{MASK}@{host}"))
        shown.append(url)
    return ";".join(shown)


def _path(text: str) -> Path:
    # A relative path is the working directory's if it is there, else the project's (the
    # defaults are the project's own files).
    path = Path(text)
    return (path if path.is_absolute() or path.exists() else ROOT / path).resolve()


def _file(text: str) -> Path:
    if not _path(text).is_file():
        raise ValueError
    return _path(text)


def _folder(text: str) -> Path:
    if not _path(text).is_dir():
        raise ValueError
    return _path(text)


def _key_of_32_bytes(text: str) -> bytes:
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError from None
    if len(key) != 32:
        raise ValueError
    return key


def _json_object(text: str) -> str:
    try:
        read = json.loads(text)
    except ValueError:
        raise ValueError from None
    if not isinstance(read, dict):  # the body's fields, whether sent as JSON or a form
        raise ValueError
    return text


INBOUND_FIELDS = ("from", "text", "message_id")


def _inbound_fields(text: str) -> dict[str, str]:
    try:
        given = json.loads(text)
    except ValueError:
        raise ValueError from None
    if not isinstance(given, dict) or set(given) != set(INBOUND_FIELDS) or not all(
            isinstance(v, str) and v for v in given.values()):
        raise ValueError
    return given


@dataclass(frozen=True)
class SigningSecret:
    id: str
    key: bytes
    until: datetime | None = None  # after this instant it verifies no more (None: always)

    def verifies_at(self, now: datetime) -> bool:
        return self.until is None or now < self.until


SECRET_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
BARE_SECRET_ID = "0"


def _signing_secrets(text: str) -> tuple[SigningSecret, ...]:
    """Comma-separated `ID:SECRET` entries. The first signs; each other one, written
    `ID:SECRET:UNTIL` (UNTIL an ISO 8601 date or time, UTC unless it says otherwise),
    still verifies what it signed until then, so a new secret can come in without cutting
    off every citizen at once. A lone secret without an id (as it was written before) has
    the id "0"."""
    entries = [e.strip() for e in text.split(",") if e.strip()]
    if not entries:
        raise ValueError("is empty")
    found: list[SigningSecret] = []
    for position, entry in enumerate(entries):
        secret_id, colon, rest = entry.partition(":")
        if not colon:  # a lone secret, as written before secrets had ids
            secret_id, rest = BARE_SECRET_ID, entry
        if not SECRET_ID.fullmatch(secret_id):
            raise ValueError(f"entry {position + 1} is not ID:SECRET "
                             "(ID of 1 to 32 letters, digits, - or _)")
        key, _, until_text = rest.partition(":")
        if not key:
            raise ValueError(f"entry {secret_id!r} has no secret")
        until = None
        if until_text:
            if position == 0:
                raise ValueError(f"entry {secret_id!r} signs (it comes first), so it takes "
                                 "no end date")
            try:
                until = datetime.fromisoformat(until_text)
            except ValueError:
                raise ValueError(f"entry {secret_id!r}: {until_text!r} is not an ISO 8601 "
                                 "date or time") from None
            if until.tzinfo is None:
                until = until.replace(tzinfo=UTC)
        if any(s.id == secret_id for s in found):
            raise ValueError(f"names {secret_id!r} twice")
        found.append(SigningSecret(secret_id, key.encode(), until))
    return tuple(found)


TEXT = Kind("any text", str)
WHOLE, COUNT = _whole(0), _whole(1)
SECONDS = _number(0, above=True)
SWITCH = Kind("yes or no (also y/n, true/false, 1/0, on/off)", _switch)
DURATION = Kind("an ISO 8601 duration of days, hours, minutes or seconds such as P90D, "
                "PT12H or PT30M", _duration)
ADDRESS = Kind("HOST:PORT", _address)
HTTP_URL = _url("http", "https")
BROKER_URLS = Kind("an amqp:// or amqps:// URL, or several separated by `;` (the nodes of one "
                   "cluster, tried in turn when one cannot be reached)", _broker_urls)
FILE = Kind("the path of a file that exists", _file)
FOLDER = Kind("the path of a folder that exists", _folder)
KEY_32 = Kind("the base64 of 32 bytes", _key_of_32_bytes)
SIGNING_SECRETS = Kind("comma-separated ID:SECRET entries, each but the first may end in "
                       ":UNTIL (an ISO 8601 date or time)", _signing_secrets)


# -- the settings ------------------------------------------------------------------------

@dataclass(frozen=True)
class Setting:
    name: str  # the environment variable
    kind: Kind
    default: str | None  # as it would be written in the environment; None: unset
    readers: tuple[str, ...]
    meaning: str
    secret: bool = False
    # For the README when the default is not a literal value ("a development value").
    default_in_words: str | None = None
    # Only OURVOICE_ENV: an empty value is refused rather than taken as unset, so that
    # production never falls back to development on a blank.
    blank_is_unset: bool = True
    # Passed to its readers by deploy/docker-compose.yml; False for what a deployment
    # does not use (a test's knob, rabbitmqctl where Compose has the management API).
    compose: bool = True


def setting(name: str, kind: Kind, default: str | None, readers: tuple[str, ...],
            meaning: str, **options) -> Any:
    return field(metadata={"setting": Setting(name, kind, default, readers, meaning, **options)})


DEVELOPMENT_SECRET = "dev:local-development-secret-change-me"
DEVELOPMENT_MASTER_KEY = "bG9jYWwtZGV2ZWxvcG1lbnQtbWFzdGVyLWtleS0zMmI="
DEVELOPMENT_CHECKPOINT_KEY = "bG9jYWwtZGV2ZWxvcG1lbnQtY2hlY2twb2ludC1rZXk="
DEVELOPMENT_BROKER_PASSWORD = "ourvoice-{service}-development"
DEFAULT_SMS_BODY = '{"to": "$to", "text": "$text", "sender": "$sender", "reference": "$reference"}'
DEVELOPMENT = "a development value"
DEFAULT_SMS_INBOUND_FIELDS = '{"from": "from", "text": "text", "message_id": "message_id"}'


def _broker_user(service: str) -> Any:
    return setting(f"{service.upper()}_BROKER_USER", TEXT, f"ourvoice-{service}",
                   (service, CLI), f"{service}'s broker user, which `ourvoice setup` creates "
                   "or updates with only the permissions it needs")


def _broker_password(service: str) -> Any:
    # Every program checks every service's in production (no public development value).
    return setting(f"{service.upper()}_BROKER_PASSWORD", TEXT,
                   DEVELOPMENT_BROKER_PASSWORD.format(service=service), EVERYONE,
                   f"{service}'s broker password (letters and digits: it goes into a URL)",
                   secret=True, default_in_words=DEVELOPMENT)


def _address_of(service: str, port: int) -> Any:
    return setting(f"{service.upper()}_ADDRESS", ADDRESS, f"127.0.0.1:{port}", (service,),
                   f"where {service} listens (`ourvoice run` prints it)")


@dataclass(frozen=True)
class Settings:
    # -- the broker
    amqp_uri: str = setting(
        "AMQP_URI", BROKER_URLS, "amqp://guest:guest@localhost:5672/", EVERYONE,
        "RabbitMQ and its virtual host, with the operator's login (used by `ourvoice setup` "
        "and the other commands; the services connect as their own users). A cluster's "
        "nodes are listed with `;` between them, each with the same login and virtual "
        "host: a service connects to the first that answers and, when it loses that node, "
        "to the next", secret=True)
    intake_broker_user: str = _broker_user(INTAKE)
    intake_broker_password: str = _broker_password(INTAKE)
    routing_broker_user: str = _broker_user(ROUTING)
    routing_broker_password: str = _broker_password(ROUTING)
    notifications_broker_user: str = _broker_user(NOTIFICATIONS)
    notifications_broker_password: str = _broker_password(NOTIFICATIONS)
    reporting_broker_user: str = _broker_user(REPORTING)
    reporting_broker_password: str = _broker_password(REPORTING)
    rabbitmq_management_url: str | None = setting(
        "RABBITMQ_MANAGEMENT_URL", HTTP_URL, None, (CLI,),
        "set (e.g. `http://rabbitmq:15672`): `ourvoice setup` and `ourvoice subscribers` "
        "manage broker users through the management HTTP API; unset: through `rabbitmqctl` "
        "on this machine")
    rabbitmq_nodename: str | None = setting(
        "RABBITMQ_NODENAME", TEXT, None, (CLI,),
        "the node `rabbitmqctl` manages, when not the default one", compose=False)
    # -- the database
    postgres_dbname: str = setting("POSTGRES_DBNAME", TEXT, "ourvoice", EVERYONE,
                                   "the database, created if missing")
    postgres_host: str = setting("POSTGRES_HOST", TEXT, "127.0.0.1", EVERYONE, "PostgreSQL's host")
    postgres_port: int = setting("POSTGRES_PORT", _whole(1), "5432", EVERYONE, "PostgreSQL's port")
    postgres_user: str = setting("POSTGRES_USER", TEXT, "postgres", EVERYONE, "PostgreSQL's user")
    postgres_password: str = setting("POSTGRES_PASSWORD", TEXT, "", EVERYONE,
                                     "PostgreSQL's password", secret=True)
    postgres_pool_size: int = setting(
        "POSTGRES_POOL_SIZE", COUNT, "2", EVERYONE,
        "event-store connections per process (kept low: every instance of every service "
        "shares PostgreSQL's connection limit)")
    postgres_max_overflow: int = setting(
        "POSTGRES_MAX_OVERFLOW", WHOLE, "6", EVERYONE,
        "connections an event store may open beyond its pool under load")
    postgres_lock_timeout: int = setting(
        "POSTGRES_LOCK_TIMEOUT", WHOLE, "0", EVERYONE,
        "seconds an append waits for its table's lock (0: as long as it takes; appends "
        "are serialised on purpose)")
    postgres_pre_ping: bool = setting(
        "POSTGRES_PRE_PING", SWITCH, "n", EVERYONE,
        "`y` tests each pooled connection before use (a round trip per append)")
    # -- where each service listens
    intake_address: str = _address_of(INTAKE, 8001)
    routing_address: str = _address_of(ROUTING, 8002)
    notifications_address: str = _address_of(NOTIFICATIONS, 8003)
    reporting_address: str = _address_of(REPORTING, 8004)
    # -- mode and secrets
    env: str = setting(
        "OURVOICE_ENV", _one_of("development", "production", refused="is not a mode"),
        "development", EVERYONE,
        "`development` or `production`, exactly; anything else stops every service and the "
        "CLI at start. In production every secret must be the hex or base64 of at least 32 "
        "random bytes (`openssl rand -base64 32`), never a development value, a phrase or a "
        "repeated pattern", blank_is_unset=False)
    secret: tuple[SigningSecret, ...] = setting(
        "OURVOICE_SECRET", SIGNING_SECRETS, DEVELOPMENT_SECRET, EVERYONE,
        "signs citizen tokens and keys idempotent retries: comma-separated `ID:SECRET` "
        "entries (ID of letters, digits, `-`, `_`); the first signs, each other written "
        "`ID:SECRET:UNTIL` still verifies the tokens it signed until then, e.g. "
        "`2026b:NEW,2026a:OLD:2027-01-31`; a lone value without an id has the id `0`",
        secret=True, default_in_words=DEVELOPMENT)
    master_key: bytes = setting(
        "OURVOICE_MASTER_KEY", KEY_32, DEVELOPMENT_MASTER_KEY, EVERYONE,
        "base64 of 32 random bytes; wraps each case's key for personal data and the "
        "sealing keys of webhook secrets and second factors (losing it loses every contact)",
        secret=True, default_in_words=DEVELOPMENT)
    checkpoint_key: bytes = setting(
        "OURVOICE_CHECKPOINT_KEY", KEY_32, DEVELOPMENT_CHECKPOINT_KEY, EVERYONE,
        "base64 of a 32-byte Ed25519 private key; signs the chains' checkpoints. Kept "
        "outside the database; `ourvoice audit public-key` gives auditors the public half",
        secret=True, default_in_words=DEVELOPMENT)
    checkpoint_seconds: float = setting(
        "OURVOICE_CHECKPOINT_SECONDS", SECONDS, "600", (REPORTING,),
        "how often reporting signs and publishes a checkpoint")
    # -- citizens and staff
    citizen_token_retention: timedelta = setting(
        "OURVOICE_CITIZEN_TOKEN_RETENTION", DURATION, "P90D", (INTAKE, CLI),
        "how long a closed or withdrawn case's citizen tokens still open it")
    session_idle: timedelta = setting(
        "OURVOICE_SESSION_IDLE", DURATION, "PT30M", EVERYONE,
        "a staff session ends this long unused")
    session_limit: timedelta = setting(
        "OURVOICE_SESSION_LIMIT", DURATION, "PT12H", EVERYONE,
        "a staff session ends this long after its login, however it is used")
    login_failures_per_username: int = setting(
        "OURVOICE_LOGIN_FAILURES_PER_USERNAME", COUNT, "5", (ROUTING,),
        "failed logins of one username within the window before 429 (every routing "
        "instance shares the count)")
    login_failures_per_address: int = setting(
        "OURVOICE_LOGIN_FAILURES_PER_ADDRESS", WHOLE, "20", (ROUTING,),
        "failed logins from one client address within the window before 429 (`0`: not "
        "counted, behind a proxy)")
    login_failure_window: timedelta = setting(
        "OURVOICE_LOGIN_FAILURE_WINDOW", DURATION, "PT15M", (ROUTING,),
        "the window failed logins are counted in")
    password_min_length: int = setting(
        "OURVOICE_PASSWORD_MIN_LENGTH", _whole(8), "10", (ROUTING, CLI),
        "the shortest password a staff account may choose")
    # -- the outbox and the deadlines
    poll_seconds: float = setting(
        "OURVOICE_POLL_SECONDS", SECONDS, "1.0", SERVICES,
        "relays and projections wake on PostgreSQL notifications; without one they still "
        "read their log this often")
    sla_policies: Path = setting(
        "OURVOICE_SLA_POLICIES", FILE, "shared/data/sla.yaml", (ROUTING,),
        "deadline policies per case type and category: ISO 8601 durations, calendar "
        "`working-days` or `24x7`, warning fraction")
    sweep_seconds: float = setting(
        "OURVOICE_SWEEP_SECONDS", SECONDS, "1", (ROUTING,),
        "how often routing looks for deadlines that are due")
    categories: Path = setting(
        "OURVOICE_CATEGORIES", FILE, "shared/data/categories.yaml", EVERYONE,
        "the service categories (operators may edit)")
    reply_templates: Path = setting(
        "OURVOICE_REPLY_TEMPLATES", FILE, "shared/data/reply-templates.yaml", (ROUTING,),
        "the standard questions and resolutions offices send, in Khmer and English "
        "(operators may edit)")
    console_url: str | None = setting(
        "OURVOICE_CONSOLE_URL", HTTP_URL, None, (NOTIFICATIONS,),
        "the staff console's public address; office emails link a case's page there "
        "(`<url>/console/#/cases/<case_id>`)",
        default_in_words="`http://` and `ROUTING_ADDRESS`")
    reports_clock_days: int = setting(
        "OURVOICE_REPORTS_CLOCK_DAYS", WHOLE, "0", (REPORTING,),
        "for tests only: moves reporting's calendar on by whole days; ignored in production",
        compose=False)
    # -- limits
    open311_keys: str | None = setting(
        "OURVOICE_OPEN311_KEYS", TEXT, None, (INTAKE,),
        "Open311 `api_key`s accepted by `POST requests.json` (or `.xml`), comma separated; "
        "`KEY:read-descriptions` also reads descriptions of ordinary cases in GETs; while "
        "unset, only `open311-development-key` (no grant), and only outside production",
        secret=True)
    open311_url: str | None = setting(
        "OURVOICE_OPEN311_URL", HTTP_URL, None, (INTAKE,),
        "Open311's public address, as its discovery document gives it to clients (e.g. "
        "`https://ourvoice.example.org/open311/v2`, behind a proxy with TLS)",
        default_in_words="`http://`, the `Host` the client asked for and `/open311/v2`")
    open311_contact: str = setting(
        "OURVOICE_OPEN311_CONTACT", TEXT,
        "Ask the operator of this Our Voice service, who also gives out api_keys.",
        (INTAKE,), "whom developers of Open311 clients ask for help and for an "
        "`api_key`: the `contact` and `key_service` of the discovery document")
    submissions_per_minute: int = setting(
        "OURVOICE_SUBMISSIONS_PER_MINUTE", WHOLE, "600", (INTAKE,),
        "submissions per client address and minute, per intake instance; `0` turns the "
        "limit off")
    http_read_timeout_seconds: float = setting(
        "OURVOICE_HTTP_READ_TIMEOUT_SECONDS", _number(0.1), "10", SERVICES,
        "seconds a client has for a request's line and headers, and again for its body "
        "(also the idle keep-alive time)")
    log_format: str = setting(
        "OURVOICE_LOG_FORMAT", _one_of("text", "json"), "text", SERVICES,
        "`text` (lines for people) or `json` (one object a line, with the service, request "
        "id, event id and case id, for a log collector)")
    metrics_token: str | None = setting(
        "OURVOICE_METRICS_TOKEN", TEXT, None, SERVICES,
        "when set, `GET /metrics` needs `Authorization: Bearer <this>`; unset, the metrics "
        "(counts only, never personal data) are open on each service's port", secret=True)
    metrics: bool = setting(
        "OURVOICE_METRICS", SWITCH, "on", SERVICES,
        "`off`: nothing is counted and `GET /metrics` answers 404 (for a deployment without "
        "Prometheus, and for the bench's measure of what counting costs); the readiness "
        "probe still reads the relays' lags")
    ready_max_relay_lag: int = setting(
        "OURVOICE_READY_MAX_RELAY_LAG", _whole(1), "1000", SERVICES,
        "`/health/ready` answers 503 when a relay of the service is this many stored events "
        "behind, or more")
    max_body_bytes: int = setting(
        "OURVOICE_MAX_BODY_BYTES", _whole(1024), "1048576", SERVICES,
        "the largest request body")
    public_reads_per_minute: int = setting(
        "OURVOICE_PUBLIC_READS_PER_MINUTE", WHOLE, "600", SERVICES,
        "public `GET`s per client address and minute, per instance of each service; `0` "
        "turns the limit off")
    open311_key_failures_per_minute: int = setting(
        "OURVOICE_OPEN311_KEY_FAILURES_PER_MINUTE", WHOLE, "10", (INTAKE,),
        "wrong Open311 `api_key`s per client address and minute before 429; `0` turns the "
        "limit off")
    # -- intake: conversations by SMS and Telegram (services/intake/conversations.py)
    sms_inbound_secret: str | None = setting(
        "OURVOICE_SMS_INBOUND_SECRET", TEXT, None, (INTAKE,),
        "the key the SMS gateway signs inbound messages with (`X-Signature: sha256=<hex "
        "HMAC-SHA256 of the body>`); while unset, `POST /v1/channels/sms` answers 404",
        secret=True)
    sms_inbound_fields: dict = setting(
        "OURVOICE_SMS_INBOUND_FIELDS",
        Kind("a JSON object naming the gateway's field for each of `from`, `text` and "
             "`message_id`", _inbound_fields),
        DEFAULT_SMS_INBOUND_FIELDS, (INTAKE,),
        "the gateway's names for an inbound SMS's `from`, `text` and `message_id` (a JSON "
        "object from ours to theirs); the body may be JSON or a form")
    telegram_secret_token: str | None = setting(
        "OURVOICE_TELEGRAM_SECRET_TOKEN", TEXT, None, (INTAKE,),
        "the `secret_token` given to Telegram's `setWebhook`, which it sends back in "
        "`X-Telegram-Bot-Api-Secret-Token`; while unset, `POST /v1/channels/telegram` "
        "answers 404", secret=True)
    telegram_bot_token: str | None = setting(
        "OURVOICE_TELEGRAM_BOT_TOKEN", TEXT, None, (INTAKE,),
        "the bot's token, for its replies through the Bot API's `sendMessage`",
        secret=True)
    telegram_api_url: str = setting(
        "OURVOICE_TELEGRAM_API_URL", HTTP_URL, "https://api.telegram.org", (INTAKE,),
        "the Bot API's address (replies go to `<this>/bot<token>/sendMessage`)")
    conversation_ttl: timedelta = setting(
        "OURVOICE_CONVERSATION_TTL", DURATION, "PT24H", (INTAKE,),
        "a conversation left this long is forgotten (its state and the replies kept for "
        "redelivered messages)")
    conversation_messages_per_minute: int = setting(
        "OURVOICE_CONVERSATION_MESSAGES_PER_MINUTE", WHOLE, "20", (INTAKE,),
        "inbound SMS or Telegram messages per sender and minute, per intake instance "
        "(then 429 for SMS, no answer on Telegram); `0` turns the limit off")
    messages_per_case: int = setting(
        "OURVOICE_MESSAGES_PER_CASE", COUNT, "100", (INTAKE,),
        "the citizen's messages a case takes in all")
    messages_per_day: int = setting(
        "OURVOICE_MESSAGES_PER_DAY", COUNT, "20", (INTAKE,),
        "the citizen's messages a case takes in any 24 hours")
    attachment_max_bytes: int = setting(
        "OURVOICE_ATTACHMENT_MAX_BYTES", _whole(1024), "20971520", (INTAKE,),
        "the largest file (photo, PDF, voice note) intake takes, as sent; a larger body is "
        "refused (413) as soon as it passes this")
    attachments_per_case: int = setting(
        "OURVOICE_ATTACHMENTS_PER_CASE", COUNT, "20", (INTAKE,),
        "the files a case takes in all, whoever adds them (then 413)")
    attachment_bytes_per_case: int = setting(
        "OURVOICE_ATTACHMENT_BYTES_PER_CASE", _whole(1024), "104857600", (INTAKE,),
        "the bytes of cleaned files a case takes in all (then 413)")
    attachments_per_day: int = setting(
        "OURVOICE_ATTACHMENTS_PER_DAY", COUNT, "10", (INTAKE,),
        "the files a case takes in any 24 hours (then 429 with `Retry-After`)")
    photo_max_pixels: int = setting(
        "OURVOICE_PHOTO_MAX_PIXELS", _whole(1), "40000000", (INTAKE,),
        "the most pixels a photo may have; a larger one (or a decompression bomb) is "
        "refused (413) before it is decoded")
    photo_max_side: int = setting(
        "OURVOICE_PHOTO_MAX_SIDE", _whole(320), "4096", (INTAKE,),
        "a cleaned photo's longest side in pixels; a larger photo is scaled down")
    attachment_sweep_after: int = setting(
        "OURVOICE_ATTACHMENT_SWEEP_AFTER", _whole(1), "600", (INTAKE,),
        "seconds after which a file stored but not recorded on its case (a crash between "
        "the two) is finished (the case has it) or deleted (it has not)")
    # -- notifications: email
    smtp_host: str = setting("SMTP_HOST", TEXT, "127.0.0.1", (NOTIFICATIONS,),
                             "the SMTP server notifications send email through")
    smtp_port: int = setting("SMTP_PORT", _whole(1), "1025", (NOTIFICATIONS,),
                             "the SMTP server's port")
    smtp_from: str = setting("SMTP_FROM", TEXT, "Our Voice <no-reply@ourvoice.local>",
                             (NOTIFICATIONS,), "the sender of every email")
    smtp_user: str = setting("SMTP_USER", TEXT, "", (NOTIFICATIONS,),
                             "SMTP login, when set")
    smtp_password: str = setting("SMTP_PASSWORD", TEXT, "", (NOTIFICATIONS,),
                                 "SMTP password", secret=True)
    smtp_starttls: bool = setting("SMTP_STARTTLS", SWITCH, "no", (NOTIFICATIONS,),
                                  "STARTTLS on the SMTP connection")
    smtp_connections: int = setting("SMTP_CONNECTIONS", COUNT, "8", (NOTIFICATIONS,),
                                    "SMTP connections kept open")
    smtp_helo_name: str | None = setting(
        "SMTP_HELO_NAME", TEXT, None, (NOTIFICATIONS,), "the name given in EHLO",
        default_in_words="the host name")
    # -- notifications: SMS
    sms_gateway_url: str = setting("SMS_GATEWAY_URL", HTTP_URL, "http://127.0.0.1:1026/sms",
                                   (NOTIFICATIONS,), "the SMS gateway's endpoint")
    sms_gateway_user: str = setting("SMS_GATEWAY_USER", TEXT, "", (NOTIFICATIONS,),
                                    "basic auth user for the gateway")
    sms_gateway_password: str = setting("SMS_GATEWAY_PASSWORD", TEXT, "", (NOTIFICATIONS,),
                                        "basic auth password for the gateway", secret=True)
    sms_gateway_token: str = setting("SMS_GATEWAY_TOKEN", TEXT, "", (NOTIFICATIONS,),
                                     "a bearer token for the gateway", secret=True)
    sms_gateway_body: str = setting(
        "SMS_GATEWAY_BODY", Kind("a JSON object as template", _json_object), DEFAULT_SMS_BODY,
        (NOTIFICATIONS,), "the gateway's body: JSON with `$to`, `$text`, `$sender`, "
        "`$reference` in its strings", default_in_words="see [Notifications]"
        "(#notifications-and-office-systems)")
    sms_gateway_format: str = setting("SMS_GATEWAY_FORMAT", _one_of("json", "form"), "json",
                                      (NOTIFICATIONS,), "how the body is sent")
    sms_sender: str = setting("SMS_SENDER", TEXT, "OurVoice", (NOTIFICATIONS,),
                              "the sender name of SMS")
    # -- notifications: delivery
    notifications_retry_base_seconds: float = setting(
        "NOTIFICATIONS_RETRY_BASE_SECONDS", SECONDS, "5", (NOTIFICATIONS,),
        "backoff after a failed try (base × 2ⁿ⁻¹), every channel")
    notifications_max_attempts: int = setting(
        "NOTIFICATIONS_MAX_ATTEMPTS", COUNT, "8", (NOTIFICATIONS,),
        "tries before a dead letter, every channel")
    notifications_send_timeout: float = setting(
        "NOTIFICATIONS_SEND_TIMEOUT", SECONDS, "10", (NOTIFICATIONS,),
        "seconds one send may take")
    notifications_lease_seconds: float = setting(
        "NOTIFICATIONS_LEASE_SECONDS", SECONDS, "60", (NOTIFICATIONS,),
        "how long a try is held before another instance may try again (keep it well "
        "above the send timeout)")
    notifications_concurrency: int = setting(
        "NOTIFICATIONS_CONCURRENCY", COUNT, "32", (NOTIFICATIONS,),
        "sends in flight per channel")
    notifications_send_interval: float = setting(
        "NOTIFICATIONS_SEND_INTERVAL", SECONDS, "0.05", (NOTIFICATIONS,),
        "how often the sender looks for due deliveries")
    notifications_lookup_timeout: float = setting(
        "NOTIFICATIONS_LOOKUP_TIMEOUT", SECONDS, "5", (NOTIFICATIONS,),
        "seconds to wait for intake or routing to give an address before the try counts "
        "as failed")
    notifications_sms_segments: int = setting(
        "NOTIFICATIONS_SMS_SEGMENTS", COUNT, "3", (NOTIFICATIONS,),
        "the most SMS parts one message may take; longer words people wrote are shortened "
        "to fit")
    notifications_office_language: str = setting(
        "NOTIFICATIONS_OFFICE_LANGUAGE", _one_of("km", "en"), "km", (NOTIFICATIONS,),
        "the language office staff are written to in")
    notifications_templates: Path = setting(
        "NOTIFICATIONS_TEMPLATES", FOLDER, "services/notifications/templates",
        (NOTIFICATIONS,), "the folder of the messages' templates")

    # What each value was read from, for env() and `ourvoice config check`.
    texts: Mapping[str, str | None] = field(default_factory=dict, repr=False, compare=False)
    sources: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    def broker_user(self, service: str) -> str:
        return getattr(self, f"{service}_broker_user")

    def broker_password(self, service: str) -> str:
        return getattr(self, f"{service}_broker_password")

    def address(self, service: str) -> str:
        return getattr(self, f"{service}_address")

    def value(self, name: str) -> Any:
        """The typed value of a variable, by its name."""
        return getattr(self, ATTRIBUTES[name])


ATTRIBUTES = {f.metadata["setting"].name: f.name for f in fields(Settings) if "setting" in f.metadata}
SETTINGS: dict[str, Setting] = {
    f.metadata["setting"].name: f.metadata["setting"] for f in fields(Settings)
    if "setting" in f.metadata}
# Keys that sign or encrypt: in production each must be long and random.
SECRETS = ("OURVOICE_SECRET", "OURVOICE_MASTER_KEY", "OURVOICE_CHECKPOINT_KEY")


class SettingsError(ValueError):
    """Settings in the environment that are not what they must be, every one of them."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


def refusal(s: Setting, text: str, why: str) -> str:
    """What is wrong with a value, naming the variable; a secret's value is never shown."""
    if why:
        return f"{s.name}{'' if s.secret else f'={text!r}'} {why}"
    return f"{s.name} must be {s.kind.accepts}{'' if s.secret else f', not {text!r}'}"


def read(environ: Mapping[str, str] = os.environ) -> dict[str, tuple[str | None, str]]:
    """Each variable's text and where it came from (the default or the environment)."""
    found = {}
    for name, s in SETTINGS.items():
        text = environ.get(name)
        if text is not None and text.strip() == "" and s.blank_is_unset:
            text = None  # Compose passes `NAME:` on empty when its .env does not set it
        found[name] = (s.default, DEFAULT) if text is None else (text, ENVIRONMENT)
    return found


def load(environ: Mapping[str, str] = os.environ) -> Settings:
    """Every setting from `environ`, checked; SettingsError names each wrong one."""
    texts, values, problems = read(environ), {}, []
    for name, (text, _) in texts.items():
        s = SETTINGS[name]
        try:
            values[ATTRIBUTES[name]] = None if text is None else s.kind.parse(text)
        except ValueError as error:
            problems.append(refusal(s, text, str(error)))
    if problems:
        raise SettingsError(problems)
    return Settings(**values, texts={n: t for n, (t, _) in texts.items()},
                    sources={n: source for n, (_, source) in texts.items()})


_current: Settings | None = None


def settings() -> Settings:
    """This program's settings, read from the environment the first time they are asked
    for (each program asks as it starts)."""
    global _current
    if _current is None:
        _current = load()
    return _current


def reload() -> Settings:
    """Read the environment again: for tests that change it in this process."""
    global _current
    _current = None
    return settings()


# -- production -------------------------------------------------------------------------

SECRET_BYTES = 32
HOW_TO_MAKE_ONE = "make one with `openssl rand -base64 32`"
# What the source gives away: never a secret in production.
DEVELOPMENT_VALUES = ("local-development-secret-change-me", DEVELOPMENT_SECRET,
                      DEVELOPMENT_MASTER_KEY, DEVELOPMENT_CHECKPOINT_KEY)


def weakness(value: str) -> str | None:
    """Why a secret is not long and random enough for production, or None if it is. It
    must be the hex or base64 of at least 32 bytes, and those bytes must look random: not
    text (a phrase encoded), not a few bytes repeated."""
    text = value.strip()
    if re.fullmatch(r"(?:[0-9a-fA-F]{2})+", text):
        raw = bytes.fromhex(text)
    else:
        try:
            raw = base64.b64decode(text.replace("-", "+").replace("_", "/")
                                   + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            return "it is neither hex nor base64"
    if len(raw) < SECRET_BYTES:
        return f"it holds {len(raw)} bytes, fewer than {SECRET_BYTES}"
    # Random bytes are almost never all printable, and 32 of them repeat few values.
    if all(0x20 <= b < 0x7F for b in raw) or len(set(raw)) < min(len(raw), 256) // 2:
        return "its bytes are not random (a phrase or a repeated pattern)"
    return None


def production_problems(current: Settings) -> list[str]:
    """In production every secret must be long and random, or anyone who read the source
    (or guessed) could forge what it signs or open what it encrypts."""
    if current.env != "production":
        return []
    weak = []
    for name in SECRETS:
        if current.sources[name] == DEFAULT:
            weak.append(f"{name} (it is unset)")
            continue
        values = {name: current.texts[name]}
        if name == "OURVOICE_SECRET":
            values = {f"{name} entry {s.id!r}": s.key.decode() for s in current.secret}
        for label, value in values.items():
            why = "it is a development value" if value in DEVELOPMENT_VALUES else weakness(value)
            if why:
                weak.append(f"{label} ({why})")
    # Broker passwords go into connection URLs (letters and digits), so only the public
    # development value is refused: with it anyone could speak on the bus as a service.
    weak += [f"{service.upper()}_BROKER_PASSWORD (it is a development value)"
             for service in SERVICES
             if current.broker_password(service) == DEVELOPMENT_BROKER_PASSWORD.format(
                 service=service)]
    if not weak:
        return []
    return ["OURVOICE_ENV=production needs long random secrets of this deployment's own "
            f"(at least {SECRET_BYTES} random bytes, hex or base64): {'; '.join(weak)}; "
            f"{HOW_TO_MAKE_ONE}"]


def problems(environ: Mapping[str, str] = os.environ) -> list[str]:
    """Everything that would stop a program from starting with this environment."""
    try:
        return production_problems(load(environ))
    except SettingsError as error:
        return error.problems


def check_at_start(program: str | None = None) -> Settings:
    """Every program calls this as it starts: its settings, or it stops (exit status 1)
    naming every wrong one (each line after the program's name, when given)."""
    global _current
    try:
        current = load()
        found = production_problems(current)
    except SettingsError as error:
        found = error.problems
    if found:
        raise SystemExit("\n".join(f"{program}: {p}" if program else p for p in found))
    _current = current
    return current


# -- showing them -------------------------------------------------------------------------

def shown(s: Setting, text: str | None) -> str:
    """A value as it may be printed: secrets masked, a URL's password too."""
    if text is None:
        return "(unset)"
    if s.secret and s.kind in (BROKER_URLS, HTTP_URL):  # only a URL's password is secret
        return masked_urls(text)
    if s.secret:
        return MASK if text else "(empty)"
    return text if text else "(empty)"


def markdown() -> str:
    """The README's table of settings."""
    rows = ["| Variable | Default | Read by | Secret | Meaning |", "|---|---|---|---|---|"]
    for s in SETTINGS.values():
        default = s.default_in_words or ("unset" if s.default is None else
                                         "empty" if s.default == "" else f"`{s.default}`")
        readers = "all" if s.readers == EVERYONE else ", ".join(
            "`ourvoice`" if r == CLI else r for r in s.readers)
        meaning = f"{s.meaning}. Accepts {s.kind.accepts}"
        rows.append(f"| `{s.name}` | {default} | {readers} | {'yes' if s.secret else ''} | "
                    f"{meaning.replace('|', '&#124;')} |")
    return "\n".join(rows) + "\n"


def check(args: argparse.Namespace) -> int:
    """`ourvoice config check`: each setting in effect (secrets masked) and where it came
    from; exit 1 naming every problem."""
    environ = os.environ
    width = max(map(len, SETTINGS))
    for name, (text, source) in read(environ).items():
        print(f"{name:<{width}}  {shown(SETTINGS[name], text)}  ({source})")
    found = problems(environ)
    for problem in found:
        print(f"problem: {problem}", file=sys.stderr)
    if not found:
        print(f"{len(SETTINGS)} settings, no problem")
    return 1 if found else 0


def _arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("check", help="print the settings in effect (secrets masked); "
                                     "exit 1 naming every problem")


command = Command("config", "the settings in effect", _arguments, check)


if __name__ == "__main__":
    if sys.argv[1:] != ["--markdown"]:
        sys.exit("usage: python -m shared.settings --markdown")
    print(markdown(), end="")
