"""Named staff accounts: who works at which office, their passwords, second factors and
sessions.

An account is made by an operator (`ourvoice staff add`) with a one-time password that
logs in only together with the account's own new password. A login gives a session
token (`s1.` then random; only its SHA-256 is kept) that ends after a time unused, at a
hard limit after the login, at logout, and at once when the account is disabled or its
password reset. A principal from a session is the account itself: its `id` is the
username, so every event's `by` names the person who acted.

Passwords are kept as argon2id hashes; second-factor (TOTP) secrets sealed under a key
of their own derived from the master key. Every change of an account, and of the policy
on second factors, is appended to `ourvoice_staff_account_changes`, which is chained like
the principals: a change deleted or altered behind the chain's back shows in
`ourvoice audit verify`."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

import argon2
import pyotp
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shared.chain import RowChain
from shared.config import StaffLogins, master_key
from shared.offices import describe
from shared.principals import ROLES, Principal, Unauthenticated

OFFICE_ROLES = ("staff", "ombudsman")  # who must belong to an office
SESSION_TOKEN_PREFIX = "s1."
USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{1,62}")
ISSUER = "Our Voice"

DDL = (
    """CREATE TABLE IF NOT EXISTS ourvoice_staff_accounts (
        username text PRIMARY KEY,
        name text NOT NULL,
        role text NOT NULL,
        office_id text,
        password_hash text NOT NULL,
        must_change_password boolean NOT NULL,
        totp_secret text,              -- sealed (see _seal), never in plain text
        totp_last_step bigint,         -- a code's time step once used, so it is not used again
        disabled_at timestamptz,
        created_at timestamptz NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS ourvoice_staff_accounts_office ON ourvoice_staff_accounts (office_id)",
    """CREATE TABLE IF NOT EXISTS ourvoice_staff_sessions (
        token_hash text PRIMARY KEY,
        username text NOT NULL REFERENCES ourvoice_staff_accounts (username),
        created_at timestamptz NOT NULL,
        last_seen_at timestamptz NOT NULL,
        expires_at timestamptz NOT NULL,  -- the hard limit, whatever the use
        ended_at timestamptz
    )""",
    "CREATE INDEX IF NOT EXISTS ourvoice_staff_sessions_user ON ourvoice_staff_sessions (username)",
    # A row per failed login, per username and per client address, each as a keyed hash:
    # the table says how often, never who typed what from where.
    """CREATE TABLE IF NOT EXISTS ourvoice_login_failures (
        id bigserial PRIMARY KEY,
        subject text NOT NULL,
        failed_at timestamptz NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS ourvoice_login_failures_subject "
    "ON ourvoice_login_failures (subject, failed_at)",
    """CREATE TABLE IF NOT EXISTS ourvoice_staff_policy (
        name text PRIMARY KEY,
        value text NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS ourvoice_staff_account_changes (
        id uuid PRIMARY KEY,
        username text,                 -- none for a change of policy
        change text NOT NULL,          -- added, password reset, password changed, disabled,
                                       -- second factor set, second factor required
        role text,
        office_id text,
        detail text,
        changed_by text NOT NULL,
        changed_at timestamptz NOT NULL
    )""",
)
CHAINED = (
    RowChain("ourvoice_staff_account_changes", "id",
             ("id", "username", "change", "role", "office_id", "detail", "changed_by",
              "changed_at"), "staff account change"),
)
DDL = (*DDL, *(statement for chain in CHAINED for statement in chain.ddl()))


@dataclass(frozen=True)
class Account:
    username: str
    name: str
    role: str
    office_id: str | None
    active: bool

    def as_json(self) -> dict:
        return {"username": self.username, "name": self.name, "role": self.role,
                "office_id": self.office_id}


def _account(row: dict) -> Account:
    return Account(row["username"], row["name"], row["role"], row["office_id"],
                   row["disabled_at"] is None)


def find(cursor, username: str) -> Account | None:
    """The account of this username, active or disabled; None if there is none."""
    cursor.execute("SELECT * FROM ourvoice_staff_accounts WHERE username = %s", (username,))
    row = cursor.fetchone()
    return _account(row) if row else None


def of_office(cursor, office_id: str) -> list[Account]:
    """The active accounts of an office, by name."""
    cursor.execute("SELECT * FROM ourvoice_staff_accounts WHERE office_id = %s"
                   " AND disabled_at IS NULL ORDER BY name, username", (office_id,))
    return [_account(row) for row in cursor.fetchall()]


def every(cursor) -> list[dict]:
    """Every account with what an operator may see of it (never a hash nor a secret)."""
    cursor.execute("SELECT username, name, role, office_id, must_change_password,"
                   " totp_secret IS NOT NULL AS has_totp, disabled_at, created_at"
                   " FROM ourvoice_staff_accounts ORDER BY office_id NULLS FIRST, username")
    return cursor.fetchall()


# -- passwords and second factors ------------------------------------------------------

HASHER = argon2.PasswordHasher()  # argon2id, with the library's recommended costs


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def password_matches(password_hash: str, password: str) -> bool:
    try:
        return HASHER.verify(password_hash, password)
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
        return False


@cache
def _dummy_hash() -> str:
    # Checked against when the username is unknown, so that a wrong username takes as
    # long as a wrong password and the time of an answer says nothing.
    return hash_password(secrets.token_urlsafe(16))


def one_time_password() -> str:
    return secrets.token_urlsafe(12)


def password_problem(password: str) -> str | None:
    minimum = StaffLogins.from_env().password_min_length
    if len(password) < minimum:
        return f"a password needs at least {minimum} characters"
    return None


NONCE_BYTES = 12


@cache
def _key(purpose: bytes) -> bytes:
    """A key of its own for each purpose, derived from the master key: the one that seals
    second factors opens nothing else, nor does any other open them."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=purpose).derive(master_key())


def _sealing_key() -> bytes:
    return _key(b"ourvoice:staff-totp:v1")


def _seal(username: str, secret: str) -> str:
    """The secret sealed to its account (the username is the associated data, so a sealed
    secret copied onto another account does not open)."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    sealed = AESGCM(_sealing_key()).encrypt(nonce, secret.encode(), username.encode())
    return base64.b64encode(nonce + sealed).decode()


def _open(username: str, sealed: str) -> str:
    raw = base64.b64decode(sealed)
    return AESGCM(_sealing_key()).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:],
                                          username.encode()).decode()


def otpauth_uri(username: str, secret: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)


def totp_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step the code belongs to (this one, the one before or after, for clocks
    a little apart), or None if it is no code of this secret."""
    totp = pyotp.TOTP(secret)
    code = code.strip().replace(" ", "")
    for offset in (0, -1, 1):
        at = now + timedelta(seconds=offset * totp.interval)
        if hmac.compare_digest(totp.at(at), code):
            return totp.timecode(at)
    return None


def totp_roles(cursor) -> set[str]:
    """The roles whose accounts need a second factor to log in."""
    cursor.execute("SELECT value FROM ourvoice_staff_policy WHERE name = 'totp_roles'")
    row = cursor.fetchone()
    return {role for role in (row["value"] if row else "").split(",") if role}


# -- what operators do -----------------------------------------------------------------

class AccountError(ValueError):
    """An account that cannot be made or changed as asked; the message says why."""


def _record(cursor, change: str, by: str, now: datetime, *, username: str | None = None,
            role: str | None = None, office_id: str | None = None, detail: str | None = None):
    cursor.execute(
        "INSERT INTO ourvoice_staff_account_changes (id, username, change, role, office_id,"
        " detail, changed_by, changed_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (uuid.uuid4(), username, change, role, office_id, detail, by, now))


def _new_totp(cursor, username: str, by: str, now: datetime) -> str:
    secret = pyotp.random_base32()
    cursor.execute("UPDATE ourvoice_staff_accounts SET totp_secret = %s, totp_last_step = NULL"
                   " WHERE username = %s", (_seal(username, secret), username))
    _record(cursor, "second factor set", by, now, username=username)
    return otpauth_uri(username, secret)


@dataclass(frozen=True)
class Issued:
    """What an operator hands to the account's owner, once."""

    account: Account
    one_time_password: str
    otpauth_uri: str | None  # a new second factor to scan, when one was made


def add(cursor, *, username: str, name: str, role: str, office_id: str | None,
        totp: bool = False, by: str = "operator", now: datetime | None = None) -> Issued:
    """Make an account with a one-time password; with a second factor when asked, or
    when its role needs one."""
    now = now or datetime.now(UTC)
    if not USERNAME.fullmatch(username):
        raise AccountError("a username is 2 to 63 lowercase letters, digits, '.', '_' or '-', "
                           "starting with a letter or digit")
    if not name.strip():
        raise AccountError("the account needs the person's name")
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}")
    if role in OFFICE_ROLES and not office_id:
        raise AccountError(f"{role} accounts need --office")
    # The offices any can be: routing's directory starts from these, and only merges or
    # closes some of them, which is routing's to judge when a case moves.
    if office_id and describe(office_id) is None:
        raise AccountError(f"no such office: {office_id}")
    password = one_time_password()
    cursor.execute(
        "INSERT INTO ourvoice_staff_accounts (username, name, role, office_id, password_hash,"
        " must_change_password, created_at) VALUES (%s, %s, %s, %s, %s, true, %s)"
        " ON CONFLICT (username) DO NOTHING",
        (username, name.strip(), role, office_id, hash_password(password), now))
    if cursor.rowcount != 1:
        raise AccountError(f"there is already an account {username}")
    _record(cursor, "added", by, now, username=username, role=role, office_id=office_id)
    uri = _new_totp(cursor, username, by, now) if totp or role in totp_roles(cursor) else None
    return Issued(Account(username, name.strip(), role, office_id, True), password, uri)


def _end_sessions(cursor, username: str, now: datetime) -> None:
    cursor.execute("UPDATE ourvoice_staff_sessions SET ended_at = %s"
                   " WHERE username = %s AND ended_at IS NULL", (now, username))


def reset_password(cursor, username: str, *, by: str = "operator",
                   now: datetime | None = None) -> Issued:
    """A new one-time password; the account's sessions end (whoever knew the old password
    is out). A second factor is made if its role needs one and it has none."""
    now = now or datetime.now(UTC)
    password = one_time_password()
    cursor.execute("UPDATE ourvoice_staff_accounts SET password_hash = %s,"
                   " must_change_password = true WHERE username = %s RETURNING *",
                   (hash_password(password), username))
    row = cursor.fetchone()
    if row is None:
        raise AccountError(f"no account {username}")
    _end_sessions(cursor, username, now)
    _record(cursor, "password reset", by, now, username=username)
    needs = row["totp_secret"] is None and row["role"] in totp_roles(cursor)
    uri = _new_totp(cursor, username, by, now) if needs else None
    return Issued(_account(row), password, uri)


def disable(cursor, username: str, *, by: str = "operator", now: datetime | None = None) -> bool:
    """Whether an active account was disabled; its sessions stop working at once."""
    now = now or datetime.now(UTC)
    cursor.execute("UPDATE ourvoice_staff_accounts SET disabled_at = %s"
                   " WHERE username = %s AND disabled_at IS NULL", (now, username))
    if cursor.rowcount != 1:
        return False
    _end_sessions(cursor, username, now)
    _record(cursor, "disabled", by, now, username=username)
    return True


def require_totp(cursor, roles: list[str], *, by: str = "operator",
                 now: datetime | None = None) -> list[str]:
    """Make these roles (and only these) need a second factor; the usernames of their
    active accounts that have none yet (they get one when their password is reset)."""
    now = now or datetime.now(UTC)
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise AccountError(f"no such role: {', '.join(sorted(unknown))}; "
                           f"roles are {', '.join(ROLES)}")
    value = ",".join(role for role in ROLES if role in roles)
    cursor.execute("INSERT INTO ourvoice_staff_policy (name, value) VALUES ('totp_roles', %s)"
                   " ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value", (value,))
    _record(cursor, "second factor required", by, now, detail=value or "no role")
    cursor.execute("SELECT username FROM ourvoice_staff_accounts WHERE role = ANY(%s)"
                   " AND totp_secret IS NULL AND disabled_at IS NULL ORDER BY username",
                   (list(roles),))
    return [row["username"] for row in cursor.fetchall()]


# -- logging in ------------------------------------------------------------------------

WRONG = "wrong username or password"


@dataclass(frozen=True)
class Refusal:
    """A login refused: the HTTP status, the field errors and the headers to answer with."""

    status: int
    errors: dict[str, list[str]]
    headers: dict | None = None
    failed: bool = True  # False when the password and code were right: no failure then


@dataclass(frozen=True)
class Attempt:
    """A login that passed the throttle: the failures it was counted as in advance (taken
    back if it succeeds) and the account's row, if there is one."""

    username: str
    failure_ids: list[int]
    row: dict | None


@dataclass(frozen=True)
class Session:
    token: str
    expires_at: datetime
    account: Account


def _subject(kind: str, value: str) -> str:
    return hmac.new(_key(b"ourvoice:login-failures:v1"), f"{kind}:{value}".encode(),
                    hashlib.sha256).hexdigest()


def begin(cursor, username: str, address: str, now: datetime | None = None
          ) -> Attempt | Refusal:
    """First step of a login, in a transaction of its own: refuse (429) while the username
    or the address has too many recent failures; otherwise count this try as a failure
    already, so that tries made at the same moment (on any instance) see one another,
    and read the account. The password is checked outside any transaction."""
    now = now or datetime.now(UTC)
    settings = StaffLogins.from_env()
    since = now - settings.failure_window
    username = username.strip().lower()
    limits = [(_subject("username", username), settings.failures_per_username)]
    if settings.failures_per_address:
        limits.append((_subject("address", address), settings.failures_per_address))
    # Tries of one username wait for one another here, so none slips past the count.
    cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (limits[0][0],))
    for subject, limit in limits:
        cursor.execute("SELECT failed_at FROM ourvoice_login_failures WHERE subject = %s"
                       " AND failed_at > %s ORDER BY failed_at DESC OFFSET %s LIMIT 1",
                       (subject, since, limit - 1))
        row = cursor.fetchone()
        if row is not None:
            wait = max(1, int((row["failed_at"] + settings.failure_window - now)
                              .total_seconds()) + 1)
            return Refusal(429, {"_": [f"too many failed logins; try again in {wait} s"]},
                           {"Retry-After": str(wait)})
    ids = []
    for subject, _ in limits:
        cursor.execute("INSERT INTO ourvoice_login_failures (subject, failed_at)"
                       " VALUES (%s, %s) RETURNING id", (subject, now))
        ids.append(cursor.fetchone()["id"])
    cursor.execute("DELETE FROM ourvoice_login_failures WHERE failed_at < %s", (since,))
    cursor.execute("SELECT * FROM ourvoice_staff_accounts WHERE username = %s", (username,))
    return Attempt(username, ids, cursor.fetchone())


def forgive(cursor, attempt: Attempt) -> None:
    """The try was counted as a failure in advance, and was none (the password was right)."""
    cursor.execute("DELETE FROM ourvoice_login_failures WHERE id = ANY(%s)",
                   (attempt.failure_ids,))


@dataclass(frozen=True)
class Checked:
    """What the password and the code said, found outside any transaction."""

    attempt: Attempt
    totp_step: int | None = None
    new_password_hash: str | None = None


def check(attempt: Attempt, password: str, totp: str | None, new_password: str | None,
          totp_required: bool, now: datetime | None = None) -> Checked | Refusal:
    """Second step: the password (against a dummy hash for an unknown username, so both
    take as long), then the account's state, its second factor, a one-time password."""
    now = now or datetime.now(UTC)
    row = attempt.row
    matches = password_matches(row["password_hash"] if row else _dummy_hash(), password)
    if row is None or not matches:
        return Refusal(401, {"_": [WRONG]})
    if row["disabled_at"] is not None:
        return Refusal(401, {"_": ["this account is disabled"]})
    step = None
    if totp_required or row["totp_secret"] is not None:
        if row["totp_secret"] is None:
            return Refusal(401, {"totp": [
                "this role needs a second factor and the account has none yet: an admin "
                "resetting its password sets one up"]})
        step = totp_step(_open(row["username"], row["totp_secret"]), totp or "", now)
        if step is None or (row["totp_last_step"] is not None
                            and step <= row["totp_last_step"]):
            return Refusal(401, {"totp": [
                "a current code from the authenticator app is required" if not totp else
                "this code is wrong or was used already"]})
    if row["must_change_password"] and not new_password:
        return Refusal(403, {"new_password": [
            "this one-time password must be changed: send new_password with it"]}, failed=False)
    if new_password is not None and new_password == password:
        return Refusal(400, {"new_password": ["the new password must differ from the old"]},
                       failed=False)
    return Checked(attempt, step, hash_password(new_password) if new_password else None)


def finish(cursor, checked: Checked, now: datetime | None = None) -> Session | Refusal:
    """Last step, in a transaction: the try was no failure after all; the new password
    and the code's step are kept; the session starts."""
    now = now or datetime.now(UTC)
    settings = StaffLogins.from_env()
    attempt = checked.attempt
    # The account as it is now: it may have been disabled or reset since it was read.
    cursor.execute("SELECT * FROM ourvoice_staff_accounts WHERE username = %s FOR UPDATE",
                   (attempt.username,))
    row = cursor.fetchone()
    if row is None or row["disabled_at"] is not None:
        return Refusal(401, {"_": ["this account is disabled"]})
    if row["password_hash"] != attempt.row["password_hash"] or \
            (checked.totp_step is not None and row["totp_last_step"] is not None
             and checked.totp_step <= row["totp_last_step"]):
        return Refusal(401, {"_": ["the account changed while logging in; try again"]})
    cursor.execute("DELETE FROM ourvoice_login_failures WHERE id = ANY(%s) OR subject = %s",
                   (attempt.failure_ids, _subject("username", attempt.username)))
    if checked.new_password_hash is not None:
        cursor.execute("UPDATE ourvoice_staff_accounts SET password_hash = %s,"
                       " must_change_password = false WHERE username = %s",
                       (checked.new_password_hash, attempt.username))
        _record(cursor, "password changed", attempt.username, now, username=attempt.username)
    if checked.totp_step is not None:
        cursor.execute("UPDATE ourvoice_staff_accounts SET totp_last_step = %s"
                       " WHERE username = %s", (checked.totp_step, attempt.username))
    token = SESSION_TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires_at = now + settings.session_limit
    cursor.execute("INSERT INTO ourvoice_staff_sessions (token_hash, username, created_at,"
                   " last_seen_at, expires_at) VALUES (%s, %s, %s, %s, %s)",
                   (_token_hash(token), attempt.username, now, now, expires_at))
    return Session(token, min(expires_at, now + settings.session_idle), _account(row))


# -- sessions --------------------------------------------------------------------------

# A session's last use is written at most this often: a console polling every few
# seconds would otherwise write on every read.
TOUCH_EVERY = timedelta(seconds=10)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def session_principal(cursor, token: str, now: datetime | None = None):
    """The account behind a session token, as a Principal; access.Unauthenticated if the
    session is unknown, ended, unused too long, past its limit, or its account disabled."""
    now = now or datetime.now(UTC)
    cursor.execute(
        "SELECT s.last_seen_at, s.expires_at, s.ended_at, a.username, a.name, a.role,"
        " a.office_id, a.disabled_at FROM ourvoice_staff_sessions s"
        " JOIN ourvoice_staff_accounts a USING (username) WHERE s.token_hash = %s",
        (_token_hash(token),))
    row = cursor.fetchone()
    if row is None:
        raise Unauthenticated("this token is not valid")
    if row["disabled_at"] is not None:
        raise Unauthenticated("this account is disabled")
    if row["ended_at"] is not None:
        raise Unauthenticated("this session has ended; log in again")
    if now >= row["expires_at"] or now >= row["last_seen_at"] + StaffLogins.from_env().session_idle:
        raise Unauthenticated("this session has expired; log in again")
    if now - row["last_seen_at"] >= TOUCH_EVERY:
        cursor.execute("UPDATE ourvoice_staff_sessions SET last_seen_at = %s"
                       " WHERE token_hash = %s AND last_seen_at < %s",
                       (now, _token_hash(token), now))
    return Principal(role=row["role"], id=row["username"], office_id=row["office_id"],
                     name=row["name"])


def session_expires_at(cursor, token: str) -> datetime | None:
    """When the session ends if it is not used again before."""
    cursor.execute("SELECT last_seen_at, expires_at FROM ourvoice_staff_sessions"
                   " WHERE token_hash = %s", (_token_hash(token),))
    row = cursor.fetchone()
    if row is None:
        return None
    return min(row["expires_at"], row["last_seen_at"] + StaffLogins.from_env().session_idle)


def end_session(cursor, token: str, now: datetime | None = None) -> bool:
    """Log out: the token works no more."""
    cursor.execute("UPDATE ourvoice_staff_sessions SET ended_at = %s"
                   " WHERE token_hash = %s AND ended_at IS NULL",
                   (now or datetime.now(UTC), _token_hash(token)))
    return cursor.rowcount == 1
