"""What the programs make of their settings (shared/settings.py says what each one is and
reads them all at start): connections, the broker's users, the production check.

PostgreSQL settings use eventsourcing's own POSTGRES_* names so that the event stores and
our read models read the same variables."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from shared.settings import (
    DEVELOPMENT_BROKER_PASSWORD,
    DEVELOPMENT_VALUES,
    SECRETS,
    SERVICES,
    SETTINGS,
    SigningSecret,
    broker_nodes,
    check_at_start,
    settings,
    weakness,
)

__all__ = ["DEFAULTS", "DEVELOPMENT_BROKER_PASSWORD", "DEVELOPMENT_VALUES", "SECRETS",
           "SERVICES", "SigningSecret", "broker_nodes", "weakness"]

# Each setting's default as written in the environment (None: unset).
DEFAULTS = {name: s.default for name, s in SETTINGS.items()}
ENVIRONMENTS = ("development", "production")


def env(name: str) -> str:
    """A setting's text as read at start (its default when unset); KeyError for a name
    that is no setting. The typed value is `settings()`'s attribute."""
    if name not in SETTINGS:
        raise KeyError(f"{name} is not a setting (see shared/settings.py)")
    return settings().texts[name]


def console_url() -> str:
    """Where staff open the console (served by routing at /console/), as their browsers
    reach it: OURVOICE_CONSOLE_URL behind a proxy, else routing's own address."""
    current = settings()
    return (current.console_url or f"http://{current.routing_address}").rstrip("/")


# -- the broker's users ------------------------------------------------------------------
# AMQP_URI says where the broker and its virtual host are, with the operator's credentials
# (`ourvoice setup` and the other commands use them). Each service connects as a broker
# user of its own instead, so that who sent a message is the broker's word (the validated
# `user_id` property), not a header anyone can write: <SERVICE>_BROKER_USER and
# <SERVICE>_BROKER_PASSWORD, which `ourvoice setup` creates with the service's permissions.

def broker_user(service: str) -> str:
    return settings().broker_user(service)


def broker_password(service: str) -> str:
    # The development default is as public as the source; Compose requires its own.
    return settings().broker_password(service)


def amqp_uri_as(user: str, password: str, amqp_uri: str | None = None) -> str:
    """AMQP_URI's broker (or each node of its cluster) and virtual host, with another
    user's credentials."""
    from urllib.parse import quote, urlsplit, urlunsplit

    login = f"{quote(user, safe='')}:{quote(password, safe='')}"
    return ";".join(
        urlunsplit(parts._replace(netloc=f"{login}@{parts.netloc.rpartition('@')[2]}"))
        for parts in map(urlsplit, broker_nodes(amqp_uri or settings().amqp_uri)))


def service_amqp_uri(service: str) -> str:
    """How `service` connects to the broker: as its own user."""
    return amqp_uri_as(broker_user(service), broker_password(service))


def environment() -> str:
    """`development` (also when unset) or `production`: the settings refuse anything
    else at start, so a misspelt `prod` cannot run a deployment on the development
    secrets."""
    return settings().env


def signing_secrets() -> list[SigningSecret]:
    """OURVOICE_SECRET's entries: the first signs, the others still verify until their
    end (see shared/settings.py)."""
    return list(settings().secret)


def citizen_token_retention() -> timedelta:
    """How long a closed or withdrawn case's citizen tokens keep opening it."""
    return settings().citizen_token_retention


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
        current = settings()
        return cls(current.session_idle, current.session_limit, current.login_failure_window,
                   current.login_failures_per_username, current.login_failures_per_address,
                   current.password_min_length)


def master_key() -> bytes:
    """The key every sealing key is made from (a case's contact, webhook secrets): the
    settings checked at start that it is the base64 of 32 bytes."""
    return settings().master_key


def check_production(program: str | None = None) -> None:
    """Every program checks this as it starts: every setting well formed (OURVOICE_ENV a
    known mode among them), and in production every secret long and random, or anyone
    who read the source (or guessed) could forge what it signs or open what it encrypts.
    Else it stops, naming each problem (after the program's name, when given)."""
    check_at_start(program)


@dataclass(frozen=True)
class Postgres:
    dbname: str
    host: str
    port: int
    user: str
    password: str

    @classmethod
    def from_env(cls) -> Postgres:
        current = settings()
        return cls(dbname=current.postgres_dbname, host=current.postgres_host,
                   port=current.postgres_port, user=current.postgres_user,
                   password=current.postgres_password)

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
        current = settings()
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": self.dbname,
            "POSTGRES_HOST": self.host,
            "POSTGRES_PORT": str(self.port),
            "POSTGRES_USER": self.user,
            "POSTGRES_PASSWORD": self.password,
            # Connections are precious: PostgreSQL allows 100 by default, shared by every
            # instance of every service. The pool grows to size + overflow under load.
            "POSTGRES_POOL_SIZE": str(current.postgres_pool_size),
            "POSTGRES_MAX_OVERFLOW": str(current.postgres_max_overflow),
            # Wait for the table lock rather than fail: appends are serialised on purpose.
            "POSTGRES_LOCK_TIMEOUT": str(current.postgres_lock_timeout),
            # No test query before each use of a pooled connection: it costs a round trip
            # on every append, and a connection broken by a database restart fails once,
            # which eventsourcing retries and our callers treat as transient.
            "POSTGRES_PRE_PING": "y" if current.postgres_pre_ping else "n",
            # Messages from the broker may arrive out of order, so every (source,
            # position) gets its own tracking row instead of one row per source.
            "SINGLE_ROW_TRACKING": "n",
            # Which also records the tracking rows of a batch of messages at once.
            "PROCESS_RECORDER_TOPIC": "shared.store:BatchTrackingRecorder",
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
