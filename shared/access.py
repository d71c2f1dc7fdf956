"""Who may call what. Every endpoint declares who it allows (see `web.endpoint`); an
endpoint that declares nobody refuses everyone, so none is left open by accident.

Three kinds of bearer token:
- a **principal's** token (staff, ombudsman, auditor, admin), made by
  `ourvoice principal create`: random, and only its SHA-256 is stored, with the role,
  office and expiry; revoking one appends a revocation;
- a **citizen's** token, handed out at submission: it names the signing secret, the case
  and the token's version, and ends in an HMAC, under that secret, of a random seed of
  the case's own (kept sealed by intake) with the version. Only its SHA-256 is stored,
  in `ourvoice_citizen_tokens`; it opens its case while that hash is on record, not
  revoked, of the case's current version, and its secret still verifies. Rotating gives
  the next version and revokes the others; erasure and the end of a closed case's
  retention revoke them all;
- a **staff session's**, from logging in to a named account (shared/accounts.py): the
  principal is the account, its id the username."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from shared import accounts
from shared.chain import RowChain
from shared.config import SigningSecret, signing_secrets
from shared.principals import ROLES, Principal, Unauthenticated, someone  # noqa: F401

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
    """CREATE TABLE IF NOT EXISTS ourvoice_citizen_tokens (
        case_id uuid NOT NULL,
        version integer NOT NULL,
        token_hash text UNIQUE NOT NULL,
        secret_id text NOT NULL,
        issued_at timestamptz NOT NULL,
        PRIMARY KEY (case_id, version)
    )""",
    """CREATE TABLE IF NOT EXISTS ourvoice_citizen_token_revocations (
        token_hash text PRIMARY KEY REFERENCES ourvoice_citizen_tokens (token_hash),
        revoked_at timestamptz NOT NULL,
        revoked_because text NOT NULL    -- rotated, erased, retention
    )""",
)
CITIZEN_TOKEN_PREFIX = "c2."
REVOKED = "this token has been revoked"
RETIRED = "this token was signed with a secret that is no longer in use"

# Who may do what is only ever appended to (a principal, then perhaps its revocation),
# so both tables are hash-chained like the event stores: a revocation deleted behind
# the chain's back, which would let a revoked principal in again, shows in `audit verify`.
CHAINED = (
    RowChain("ourvoice_principals", "id",
             ("id", "token_hash", "role", "office_id", "created_at", "expires_at"), "principal"),
    RowChain("ourvoice_revocations", "principal_id", ("principal_id", "revoked_at"),
             "revocation"),
    # A citizen's token and its revocation likewise: a revocation deleted would open an
    # erased or rotated-away case again.
    RowChain("ourvoice_citizen_tokens", "token_hash",
             ("case_id", "version", "token_hash", "secret_id", "issued_at"), "citizen token"),
    RowChain("ourvoice_citizen_token_revocations", "token_hash",
             ("token_hash", "revoked_at", "revoked_because"), "citizen token revocation"),
)
DDL = (*DDL, *(statement for chain in CHAINED for statement in chain.ddl()))


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _citizen_mac(secret: SigningSecret, case_id: UUID, version: int, seed: bytes) -> str:
    digest = hmac.new(secret.key, b"citizen-token:%s:%d:" % (case_id.hex.encode(), version)
                      + seed, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _citizen_token(secret: SigningSecret, case_id: UUID, version: int, seed: bytes) -> str:
    """The same every time for a case, version and secret, so a retried submission hands
    back the same one; nobody without the case's seed can make it."""
    return (f"{CITIZEN_TOKEN_PREFIX}{secret.id}.{case_id.hex}.{version}."
            f"{_citizen_mac(secret, case_id, version, seed)}")


def _secret_named(secret_id: str) -> SigningSecret | None:
    return next((s for s in signing_secrets() if s.id == secret_id), None)


def issue_citizen_token(cursor, case_id: UUID, version: int, seed: bytes,
                        now: datetime | None = None) -> str:
    """Record the case's token of this version and return it. Issued again (a retry,
    even one racing the first), it is the one recorded first, under the secret that
    signed it then."""
    secret = signing_secrets()[0]
    token = _citizen_token(secret, case_id, version, seed)
    cursor.execute(
        """INSERT INTO ourvoice_citizen_tokens (case_id, version, token_hash, secret_id, issued_at)
           VALUES (%s, %s, %s, %s, %s)
           ON CONFLICT (case_id, version) DO UPDATE SET case_id = EXCLUDED.case_id
           RETURNING secret_id""",
        (case_id, version, _hash(token), secret.id, now or datetime.now(UTC)),
    )
    signed_by = cursor.fetchone()["secret_id"]
    if signed_by != secret.id:
        secret = _secret_named(signed_by)
        if secret is None:
            raise Unauthenticated(RETIRED)
        token = _citizen_token(secret, case_id, version, seed)
    return token


def citizen_token_hash(token: str) -> str:
    return _hash(token)


def rotate_citizen_token(cursor, principal: Principal, seed: bytes,
                         now: datetime | None = None) -> str:
    """A new token for the citizen's case; the one the citizen came with, and any other
    of the case, is revoked in the same transaction. Two rotations racing with one token:
    the first wins, the second finds its token revoked."""
    now = now or datetime.now(UTC)
    cursor.execute(
        "SELECT token_hash FROM ourvoice_citizen_tokens WHERE case_id = %s AND version = %s "
        "FOR UPDATE", (principal.case_id, principal.token_version))
    row = cursor.fetchone()
    if row is None or _revoked(cursor, row["token_hash"]):
        raise Unauthenticated(REVOKED)
    revoke_citizen_tokens(cursor, principal.case_id, "rotated", now)
    return issue_citizen_token(cursor, principal.case_id, principal.token_version + 1, seed, now)


def revoke_citizen_tokens(cursor, case_id: UUID, because: str,
                          now: datetime | None = None) -> int:
    """Revoke every token of the case not revoked yet; how many were."""
    # Appended, never updated: the revocations are chained (see CHAINED).
    cursor.execute(
        "INSERT INTO ourvoice_citizen_token_revocations (token_hash, revoked_at, revoked_because) "
        "SELECT token_hash, %s, %s FROM ourvoice_citizen_tokens WHERE case_id = %s "
        "ON CONFLICT DO NOTHING",
        (now or datetime.now(UTC), because, case_id),
    )
    return cursor.rowcount


def _revoked(cursor, token_hash: str) -> bool:
    cursor.execute("SELECT 1 FROM ourvoice_citizen_token_revocations WHERE token_hash = %s",
                   (token_hash,))
    return cursor.fetchone() is not None


def _citizen(cursor, token: str, now: datetime) -> Principal:
    parts = token[len(CITIZEN_TOKEN_PREFIX):].split(".")
    if len(parts) != 4:
        raise Unauthenticated("this token is not valid")
    secret_id = parts[0]
    cursor.execute(
        """SELECT t.case_id, t.version, t.secret_id, r.revoked_at,
                  (SELECT max(version) FROM ourvoice_citizen_tokens c
                   WHERE c.case_id = t.case_id) AS current_version
           FROM ourvoice_citizen_tokens t
           LEFT JOIN ourvoice_citizen_token_revocations r USING (token_hash)
           WHERE t.token_hash = %s""",
        (_hash(token),),
    )
    row = cursor.fetchone()
    if row is None or row["secret_id"] != secret_id:
        raise Unauthenticated("this token is not valid")
    if row["revoked_at"] is not None or row["version"] != row["current_version"]:
        raise Unauthenticated(REVOKED)
    secret = _secret_named(secret_id)
    if secret is None or not secret.verifies_at(now):
        raise Unauthenticated(RETIRED)
    return Principal(role="citizen", id=str(row["case_id"]), case_id=row["case_id"],
                     token_version=row["version"])


def create_principal(cursor, role: str, office_id: str | None, valid_for: timedelta,
                     now: datetime | None = None) -> tuple[UUID, str]:
    """Record a principal and return its id and token; the token itself is not kept."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if role in ("staff", "ombudsman") and not office_id:
        raise ValueError(f"{someone(role)} principal needs --office")
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
    if token.startswith(CITIZEN_TOKEN_PREFIX):
        return _citizen(cursor, token, now or datetime.now(UTC))
    if token.startswith("s1."):
        return accounts.session_principal(cursor, token, now)
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
        raise Unauthenticated(REVOKED)
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
