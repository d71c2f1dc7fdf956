"""Configuration from the environment, with defaults that work on a developer's machine.

PostgreSQL settings use eventsourcing's own POSTGRES_* names so that the event stores and
our read models read the same variables."""

from __future__ import annotations

import os
from dataclasses import dataclass

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
    # Signs citizen tokens. Production deployments must set their own.
    "OURVOICE_SECRET": "local-development-secret-change-me",
    # Wraps each case's key for personal data (base64 of 32 bytes). Production sets its own.
    "OURVOICE_MASTER_KEY": "bG9jYWwtZGV2ZWxvcG1lbnQtbWFzdGVyLWtleS0zMmI=",
    # Signs the hash chains' checkpoints (Ed25519, base64 of the 32-byte private key).
    "OURVOICE_CHECKPOINT_KEY": "bG9jYWwtZGV2ZWxvcG1lbnQtY2hlY2twb2ludC1rZXk=",
    "OURVOICE_CHECKPOINT_SECONDS": "600",
    # Relays and projections wake on PostgreSQL notifications; without one they still look
    # at their log this often, in case a notification was missed.
    "OURVOICE_POLL_SECONDS": "1.0",
}

SERVICES = ("intake", "routing", "notifications", "reporting")

# Keys that sign or encrypt: in production each must be set, and not to its default.
SECRETS = ("OURVOICE_SECRET", "OURVOICE_MASTER_KEY", "OURVOICE_CHECKPOINT_KEY")


def env(name: str) -> str:
    return os.environ.get(name, DEFAULTS[name])


def check_production() -> None:
    """With OURVOICE_ENV=production, refuse to run on a secret that is unset or left at
    its development value: anyone who read the source could forge what it signs or open
    what it encrypts."""
    if os.environ.get("OURVOICE_ENV", "development") != "production":
        return
    weak = [name for name in SECRETS if os.environ.get(name, "") in ("", DEFAULTS[name])]
    if weak:
        raise SystemExit(f"OURVOICE_ENV=production: set {', '.join(weak)} to a secret value "
                         "of this deployment's own")


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
