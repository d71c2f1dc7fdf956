"""Who may call what. Every endpoint declares who it allows (see `web.endpoint`); an
endpoint that declares nobody refuses everyone, so none is left open by accident.

Two kinds of bearer token:
- a **principal's** token (staff, ombudsman, auditor, admin), made by
  `ourvoice principal create`: random, and only its SHA-256 is stored, with the role,
  office and expiry; revoking one appends a revocation;
- a **citizen's** token, handed out once at submission: it names the case and carries
  an HMAC of the case id, so it opens that case alone and needs no lookup."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from shared.chain import RowChain
from shared.config import env

ROLES = ("staff", "ombudsman", "auditor", "admin")
PUBLIC = "public"

DDL = (
    """CREATE TABLE IF NOT EXISTS ourvoice_principals (
        id uuid PRIMARY KEY,
        token_hash text UNIQUE NOT NULL,
        role text NOT NULL,
        office_id text,
        created_at timestamptz NOT NULL,
        expires_at timestamptz NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS ourvoice_revocations (
        principal_id uuid PRIMARY KEY REFERENCES ourvoice_principals (id),
        revoked_at timestamptz NOT NULL
    )""",
)

# Who may do what is only ever appended to (a principal, then perhaps its revocation),
# so both tables are hash-chained like the event stores: a revocation deleted behind
# the chain's back, which would let a revoked principal in again, shows in `audit verify`.
CHAINED = (
    RowChain("ourvoice_principals", "id",
             ("id", "token_hash", "role", "office_id", "created_at", "expires_at"), "principal"),
    RowChain("ourvoice_revocations", "principal_id", ("principal_id", "revoked_at"),
             "revocation"),
)
DDL = (*DDL, *(statement for chain in CHAINED for statement in chain.ddl()))


@dataclass(frozen=True)
class Principal:
    role: str  # one of ROLES, or "citizen"
    id: str
    office_id: str | None = None
    case_id: UUID | None = None

    def works_at(self, office_id: str | None) -> bool:
        return self.role in ("staff", "ombudsman") and office_id is not None \
            and self.office_id == office_id


class Unauthenticated(Exception):
    """No token, or one that is unknown, expired or revoked (401)."""


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _case_mac(case_id: UUID) -> str:
    digest = hmac.new(env("OURVOICE_SECRET").encode(), f"citizen-token:{case_id}".encode(),
                      hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def citizen_token(case_id: UUID) -> str:
    """The same every time for a case, so a retried submission hands back the same one."""
    return f"c1.{case_id.hex}.{_case_mac(case_id)}"


def citizen_token_hash(token: str) -> str:
    return _hash(token)


def create_principal(cursor, role: str, office_id: str | None, valid_for: timedelta,
                     now: datetime | None = None) -> tuple[UUID, str]:
    """Record a principal and return its id and token; the token itself is not kept."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if role in ("staff", "ombudsman") and not office_id:
        raise ValueError(f"a {role} principal needs --office")
    now = now or datetime.now(UTC)
    token = "p1." + secrets.token_urlsafe(32)
    principal_id = UUID(bytes=secrets.token_bytes(16), version=4)
    cursor.execute(
        "INSERT INTO ourvoice_principals (id, token_hash, role, office_id, created_at, expires_at)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (principal_id, _hash(token), role, office_id, now, now + valid_for),
    )
    return principal_id, token


def revoke_principal(cursor, principal_id: UUID, now: datetime | None = None) -> bool:
    cursor.execute(
        "INSERT INTO ourvoice_revocations (principal_id, revoked_at) "
        "SELECT id, %s FROM ourvoice_principals WHERE id = %s ON CONFLICT DO NOTHING",
        (now or datetime.now(UTC), principal_id),
    )
    return cursor.rowcount == 1


def authenticate(cursor, authorization: str | None, now: datetime | None = None) -> Principal:
    """The principal behind an `Authorization: Bearer ...` header, or Unauthenticated."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("a Bearer token is required")
    if token.startswith("c1."):
        _, case_hex, mac = (token.split(".") + ["", ""])[:3]
        try:
            case_id = UUID(hex=case_hex)
        except ValueError:
            raise Unauthenticated("this token is not valid") from None
        if not hmac.compare_digest(mac, _case_mac(case_id)):
            raise Unauthenticated("this token is not valid")
        return Principal(role="citizen", id=str(case_id), case_id=case_id)
    cursor.execute(
        """SELECT p.id, p.role, p.office_id, p.expires_at, r.revoked_at
           FROM ourvoice_principals p LEFT JOIN ourvoice_revocations r ON r.principal_id = p.id
           WHERE p.token_hash = %s""",
        (_hash(token),),
    )
    row = cursor.fetchone()
    if row is None:
        raise Unauthenticated("this token is not valid")
    if row["revoked_at"] is not None:
        raise Unauthenticated("this token has been revoked")
    if row["expires_at"] <= (now or datetime.now(UTC)):
        raise Unauthenticated("this token has expired")
    return Principal(role=row["role"], id=str(row["id"]), office_id=row["office_id"])


@dataclass(frozen=True)
class OfficeInPath:
    """Staff or ombudsman of the office named by a path parameter."""

    parameter: str = "office_id"

    def allows(self, principal: Principal, path_args: dict) -> bool:
        return principal.works_at(path_args.get(self.parameter))


def allowed(rules, principal: Principal, path_args: dict) -> bool:
    """Whether any rule lets this principal in. Rules are role names ("staff",
    "citizen", ...) or objects with `allows(principal, path_args)`."""
    for rule in rules:
        if isinstance(rule, str):
            if rule == principal.role:
                return True
        elif rule.allows(principal, path_args):
            return True
    return False
