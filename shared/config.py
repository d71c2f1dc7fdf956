"""Configuration from the environment, with defaults that work on a developer's machine.

PostgreSQL settings use eventsourcing's own POSTGRES_* names so that the event stores and
our read models read the same variables."""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

DEFAULTS = {
    "AMQP_URI": "amqp://guest:guest@localhost:5672/",
    "POSTGRES_DBNAME": "ourvoice",
    "POSTGRES_HOST": "127.0.0.1",
    "POSTGRES_PORT": "5432",
    "POSTGRES_USER": "postgres",
    "POSTGRES_PASSWORD": "",
    "INTAKE_ADDRESS": "127.0.0.1:8001",
    "ROUTING_ADDRESS": "127.0.0.1:8002",
    "NOTIFICATIONS_ADDRESS": "127.0.0.1:8003",
    "REPORTING_ADDRESS": "127.0.0.1:8004",
    # Signs citizen tokens: `ID:SECRET` entries, see `signing_secrets`. Production
    # deployments must set their own.
    "OURVOICE_SECRET": "dev:local-development-secret-change-me",
    # How long a closed or withdrawn case's citizen tokens still open it (ISO 8601).
    "OURVOICE_CITIZEN_TOKEN_RETENTION": "P90D",
    # Wraps each case's key for personal data (base64 of 32 bytes). Production sets its own.
    "OURVOICE_MASTER_KEY": "bG9jYWwtZGV2ZWxvcG1lbnQtbWFzdGVyLWtleS0zMmI=",
    # Signs the hash chains' checkpoints (Ed25519, base64 of the 32-byte private key).
    "OURVOICE_CHECKPOINT_KEY": "bG9jYWwtZGV2ZWxvcG1lbnQtY2hlY2twb2ludC1rZXk=",
    "OURVOICE_CHECKPOINT_SECONDS": "600",
    # Relays and projections wake on PostgreSQL notifications; without one they still look
    # at their log this often, in case a notification was missed.
    "OURVOICE_POLL_SECONDS": "1.0",
    # Staff sessions (ISO 8601 durations): one ends after this long unused, and in any
    # case this long after its login.
    "OURVOICE_SESSION_IDLE": "PT30M",
    "OURVOICE_SESSION_LIMIT": "PT12H",
    # Failed logins within the window, per username and per client address, after which
    # further tries wait (429); counted in PostgreSQL, so every routing instance agrees.
    "OURVOICE_LOGIN_FAILURE_WINDOW": "PT15M",
    "OURVOICE_LOGIN_FAILURES_PER_USERNAME": "5",
    # Higher: the staff of an office often share one address.
    "OURVOICE_LOGIN_FAILURES_PER_ADDRESS": "20",
    "OURVOICE_PASSWORD_MIN_LENGTH": "10",
}

SERVICES = ("intake", "routing", "notifications", "reporting")

# Keys that sign or encrypt: in production each must be long and random.
SECRETS = ("OURVOICE_SECRET", "OURVOICE_MASTER_KEY", "OURVOICE_CHECKPOINT_KEY")
ENVIRONMENTS = ("development", "production")
# 32 random bytes, as `openssl rand -base64 32` or `openssl rand -hex 32` writes them.
SECRET_BYTES = 32
HOW_TO_MAKE_ONE = "make one with `openssl rand -base64 32`"
SECRET_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
BARE_SECRET_ID = "0"
# What the source gives away: never a secret in production.
DEVELOPMENT_VALUES = ("local-development-secret-change-me", DEFAULTS["OURVOICE_SECRET"],
                      DEFAULTS["OURVOICE_MASTER_KEY"], DEFAULTS["OURVOICE_CHECKPOINT_KEY"])


def env(name: str) -> str:
    return os.environ.get(name, DEFAULTS[name])


def console_url() -> str:
    """Where staff open the console (served by routing at /console/), as their browsers
    reach it: OURVOICE_CONSOLE_URL behind a proxy, else routing's own address."""
    return (os.environ.get("OURVOICE_CONSOLE_URL") or f"http://{env('ROUTING_ADDRESS')}").rstrip("/")


# -- the broker's users ------------------------------------------------------------------
# AMQP_URI says where the broker and its virtual host are, with the operator's credentials
# (`ourvoice setup` and the other commands use them). Each service connects as a broker
# user of its own instead, so that who sent a message is the broker's word (the validated
# `user_id` property), not a header anyone can write: <SERVICE>_BROKER_USER and
# <SERVICE>_BROKER_PASSWORD, which `ourvoice setup` creates with the service's permissions.

DEVELOPMENT_BROKER_PASSWORD = "ourvoice-{service}-development"


def broker_user(service: str) -> str:
    return os.environ.get(f"{service.upper()}_BROKER_USER", f"ourvoice-{service}")


def broker_password(service: str) -> str:
    # The development default is as public as the source; Compose requires its own.
    return os.environ.get(f"{service.upper()}_BROKER_PASSWORD",
                          DEVELOPMENT_BROKER_PASSWORD.format(service=service))


def amqp_uri_as(user: str, password: str, amqp_uri: str | None = None) -> str:
    """AMQP_URI's broker and virtual host, with another user's credentials."""
    from urllib.parse import quote, urlsplit, urlunsplit

    parts = urlsplit(amqp_uri or env("AMQP_URI"))
    address = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{quote(user, safe='')}:{quote(password, safe='')}"
                                            f"@{address}"))


def service_amqp_uri(service: str) -> str:
    """How `service` connects to the broker: as its own user."""
    return amqp_uri_as(broker_user(service), broker_password(service))


def environment() -> str:
    """`development` (also when unset) or `production`; anything else stops the program,
    so a misspelt `prod` cannot run a deployment on the development secrets."""
    value = os.environ.get("OURVOICE_ENV", "development")
    if value not in ENVIRONMENTS:
        raise SystemExit(f"OURVOICE_ENV={value!r} is not a mode: set it to exactly "
                         "'development' or 'production' (unset means development)")
    return value


@dataclass(frozen=True)
class SigningSecret:
    id: str
    key: bytes
    until: datetime | None = None  # after this instant it verifies no more (None: always)

    def verifies_at(self, now: datetime) -> bool:
        return self.until is None or now < self.until


def signing_secrets() -> list[SigningSecret]:
    """OURVOICE_SECRET as comma-separated `ID:SECRET` entries. The first signs; each
    other one, written `ID:SECRET:UNTIL` (UNTIL an ISO 8601 date or time, UTC unless it
    says otherwise), still verifies what it signed until then, so a new secret can come
    in without cutting off every citizen at once. A lone secret without an id (as it was
    written before) has the id "0". Raises ValueError on a malformed value."""
    entries = [e.strip() for e in env("OURVOICE_SECRET").split(",") if e.strip()]
    if not entries:
        raise ValueError("OURVOICE_SECRET is empty")
    found: list[SigningSecret] = []
    for position, entry in enumerate(entries):
        secret_id, colon, rest = entry.partition(":")
        if not colon:  # a lone secret, as written before secrets had ids
            secret_id, rest = BARE_SECRET_ID, entry
        if not SECRET_ID.fullmatch(secret_id):
            raise ValueError(f"OURVOICE_SECRET entry {position + 1} is not ID:SECRET "
                             "(ID of 1 to 32 letters, digits, - or _)")
        key, _, until_text = rest.partition(":")
        if not key:
            raise ValueError(f"OURVOICE_SECRET entry {secret_id!r} has no secret")
        until = None
        if until_text:
            if position == 0:
                raise ValueError(f"OURVOICE_SECRET entry {secret_id!r} signs (it comes "
                                 "first), so it takes no end date")
            try:
                until = datetime.fromisoformat(until_text)
            except ValueError:
                raise ValueError(f"OURVOICE_SECRET entry {secret_id!r}: {until_text!r} is "
                                 "not an ISO 8601 date or time") from None
            if until.tzinfo is None:
                until = until.replace(tzinfo=UTC)
        if any(s.id == secret_id for s in found):
            raise ValueError(f"OURVOICE_SECRET names {secret_id!r} twice")
        found.append(SigningSecret(secret_id, key.encode(), until))
    return found


def duration(name: str) -> timedelta:
    """A setting that is an ISO 8601 duration of days, hours, minutes or seconds (P90D,
    PT12H, PT30M). ValueError if malformed."""
    text = env(name).strip()
    found = re.fullmatch(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?", text)
    if found is None or text in ("P", "PT") or text.endswith("T"):
        raise ValueError(f"{name} must be an ISO 8601 duration such as P90D or PT12H, "
                         f"not {text!r}")
    days, hours, minutes, seconds = (float(part or 0) for part in found.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def citizen_token_retention() -> timedelta:
    """How long a closed or withdrawn case's citizen tokens keep opening it."""
    return duration("OURVOICE_CITIZEN_TOKEN_RETENTION")


def count(name: str, minimum: int = 1) -> int:
    """A setting that is a whole number of at least `minimum`. ValueError otherwise."""
    text = env(name).strip()
    if not text.isdigit() or int(text) < minimum:
        raise ValueError(f"{name} must be a whole number of at least {minimum}, not {text!r}")
    return int(text)


@dataclass(frozen=True)
class StaffLogins:
    """How staff sessions last and how failed logins are throttled."""

    session_idle: timedelta
    session_limit: timedelta
    failure_window: timedelta
    failures_per_username: int
    failures_per_address: int  # 0: not counted (behind a proxy every client shares one)
    password_min_length: int

    @classmethod
    def from_env(cls) -> StaffLogins:
        return cls(duration("OURVOICE_SESSION_IDLE"), duration("OURVOICE_SESSION_LIMIT"),
                   duration("OURVOICE_LOGIN_FAILURE_WINDOW"),
                   count("OURVOICE_LOGIN_FAILURES_PER_USERNAME"),
                   count("OURVOICE_LOGIN_FAILURES_PER_ADDRESS", minimum=0),
                   count("OURVOICE_PASSWORD_MIN_LENGTH", minimum=8))


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


class MasterKeyError(ValueError):
    """OURVOICE_MASTER_KEY is not the base64 of 32 bytes."""


def master_key() -> bytes:
    """The key every sealing key is made from (a case's contact, webhook secrets)."""
    try:
        key = base64.b64decode(env("OURVOICE_MASTER_KEY"), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise MasterKeyError("OURVOICE_MASTER_KEY must be the base64 of 32 random bytes")
    return key


def check_production() -> None:
    """Every program checks this as it starts. OURVOICE_ENV must be a known mode and
    OURVOICE_SECRET well formed; in production every secret must be long and random, or
    anyone who read the source (or guessed) could forge what it signs or open what it
    encrypts."""
    mode = environment()
    try:
        secrets = signing_secrets()
        citizen_token_retention()
        StaffLogins.from_env()
    except ValueError as error:
        raise SystemExit(str(error)) from None
    if mode != "production":
        return
    weak = []
    for name in SECRETS:
        values = {name: os.environ.get(name, "")}
        if name == "OURVOICE_SECRET" and values[name]:
            values = {f"{name} entry {s.id!r}": s.key.decode() for s in secrets}
        for label, value in values.items():
            why = "it is unset" if not value else \
                "it is a development value" if value in DEVELOPMENT_VALUES else weakness(value)
            if why:
                weak.append(f"{label} ({why})")
    # Broker passwords go into connection URLs (letters and digits), so only the public
    # development value is refused: with it anyone could speak on the bus as a service.
    weak += [f"{service.upper()}_BROKER_PASSWORD (it is a development value)"
             for service in SERVICES
             if broker_password(service) == DEVELOPMENT_BROKER_PASSWORD.format(service=service)]
    if weak:
        raise SystemExit("OURVOICE_ENV=production needs long random secrets of this "
                         f"deployment's own (at least {SECRET_BYTES} random bytes, hex or "
                         f"base64): {'; '.join(weak)}; {HOW_TO_MAKE_ONE}")


@dataclass(frozen=True)
class Postgres:
    dbname: str
    host: str
    port: int
    user: str
    password: str

    @classmethod
    def from_env(cls) -> Postgres:
        return cls(
            dbname=env("POSTGRES_DBNAME"),
            host=env("POSTGRES_HOST"),
            port=int(env("POSTGRES_PORT")),
            user=env("POSTGRES_USER"),
            password=env("POSTGRES_PASSWORD"),
        )

    def conninfo(self, dbname: str | None = None) -> str:
        parts = {
            "dbname": dbname or self.dbname,
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
        }
        return " ".join(f"{k}='{v}'" for k, v in parts.items() if v != "")

    def eventsourcing_env(self) -> dict[str, str]:
        """The environment an eventsourcing Application needs to use this database."""
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": self.dbname,
            "POSTGRES_HOST": self.host,
            "POSTGRES_PORT": str(self.port),
            "POSTGRES_USER": self.user,
            "POSTGRES_PASSWORD": self.password,
            # Connections are precious: PostgreSQL allows 100 by default, shared by every
            # instance of every service. The pool grows to size + overflow under load.
            "POSTGRES_POOL_SIZE": os.environ.get("POSTGRES_POOL_SIZE", "2"),
            "POSTGRES_MAX_OVERFLOW": os.environ.get("POSTGRES_MAX_OVERFLOW", "6"),
            # Wait for the table lock rather than fail: appends are serialised on purpose.
            "POSTGRES_LOCK_TIMEOUT": os.environ.get("POSTGRES_LOCK_TIMEOUT", "0"),
            # No test query before each use of a pooled connection: it costs a round trip
            # on every append, and a connection broken by a database restart fails once,
            # which eventsourcing retries and our callers treat as transient.
            "POSTGRES_PRE_PING": os.environ.get("POSTGRES_PRE_PING", "n"),
            # Messages from the broker may arrive out of order, so every (source,
            # position) gets its own tracking row instead of one row per source.
            "SINGLE_ROW_TRACKING": "n",
        }


def ensure_database(pg: Postgres | None = None) -> None:
    """Create the configured database if it does not exist yet."""
    import psycopg
    from psycopg import sql

    pg = pg or Postgres.from_env()
    with psycopg.connect(pg.conninfo("postgres"), autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (pg.dbname,))
        if found.fetchone() is None:
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(pg.dbname)))
            except psycopg.errors.DuplicateDatabase:
                pass  # another service created it at the same moment
