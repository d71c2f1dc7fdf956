"""Personal data at rest: a citizen's name, phone and email are sealed (AES-GCM) with a
key of the case's own, and that key is kept only wrapped by the master key, in
`intake_case_keys`. Erasing the data destroys the key (crypto-shredding): the stored
events, which cannot change, keep a ciphertext nobody can open any more."""

from __future__ import annotations

import base64
import json
import os
from uuid import UUID

from cryptography.exceptions import InvalidTag
from eventsourcing.application import AggregateNotFoundError
from nameko.extensions import DependencyProvider

from services.intake import attachments, readmodels
from services.intake.application import Intake, Issued
from services.intake.domain import Case
from services.intake.keys import case_key, destroy_key, seal, stored_key, unseal
from shared import access
from shared.config import master_key
from shared.db import Database
from shared.store import open_store
from shared.tracking import case_id_for, normalise_tracking_code

DDL = (
    """CREATE TABLE IF NOT EXISTS intake_case_keys (
        case_id uuid PRIMARY KEY,
        wrapped_key bytea,       -- NULL once the case's personal data was erased
        erased_at timestamptz
    )""",
    # The random part of each case's citizen tokens, sealed by the master key: without it
    # nobody, not even with the signing secret, can make a token for the case.
    """CREATE TABLE IF NOT EXISTS intake_token_seeds (
        case_id uuid PRIMARY KEY,
        sealed_seed bytea NOT NULL
    )""",
)


# As the key is, each sealed part is bound to its case (associated data): copied onto
# another case it does not open.
def _contact_aad(case_id: UUID) -> bytes:
    return b"ourvoice-contact:" + case_id.bytes


def _seed_aad(case_id: UUID) -> bytes:
    return b"ourvoice-token-seed:" + case_id.bytes


def token_seed(cursor, master: bytes, case_id: UUID) -> bytes:
    """The case's token seed, made on first use; retries racing each other all get the
    one stored first, hence the same token."""
    sealed = seal(master, os.urandom(32), _seed_aad(case_id))
    cursor.execute(
        """INSERT INTO intake_token_seeds (case_id, sealed_seed) VALUES (%s, %s)
           ON CONFLICT (case_id) DO UPDATE SET case_id = EXCLUDED.case_id
           RETURNING sealed_seed""",
        (case_id, sealed),
    )
    return unseal(master, bytes(cursor.fetchone()["sealed_seed"]), _seed_aad(case_id))


class MasterKey(DependencyProvider):
    """The master key, read when the service starts: a missing or malformed key stops
    the service at once instead of failing each submission that carries a contact."""

    def setup(self) -> None:
        self.key = master_key()

    def get_dependency(self, worker_ctx) -> bytes:
        return self.key


def seal_contact(key: bytes, case_id: UUID, contact: dict[str, str]) -> str:
    plaintext = json.dumps(contact, ensure_ascii=False, sort_keys=True).encode()
    return base64.b64encode(seal(key, plaintext, _contact_aad(case_id))).decode()


def open_contact(key: bytes, case_id: UUID, sealed: str) -> dict[str, str] | None:
    """The contact, or None when this key does not open it."""
    try:
        return json.loads(unseal(key, base64.b64decode(sealed), _contact_aad(case_id)))
    except (InvalidTag, ValueError):
        return None


class CaseKeys:
    """The case's keys and tokens in intake's tables, for the use cases (application.Keys)."""

    def __init__(self, db: Database, master: bytes | None = None):
        # The master key only makes and opens keys: destroying one needs none.
        self.db = db
        self.master = master

    def issue(self, case_id: UUID, contact: dict[str, str]) -> Issued:
        with self.db.transaction() as cursor:
            data_key = case_key(cursor, self.master, case_id) if contact else None
            token = access.issue_citizen_token(cursor, case_id, 1,
                                               token_seed(cursor, self.master, case_id))
        token_hash = access.citizen_token_hash(token)
        if not contact:
            return Issued(token, token_hash)
        if data_key is None:  # erased, so this code belongs to a case that exists
            return Issued(token, token_hash, erased=True)
        return Issued(token, token_hash, seal_contact(data_key, case_id, contact))

    def revoke_tokens(self, case_id: UUID, reason: str) -> None:
        with self.db.transaction() as cursor:
            access.revoke_citizen_tokens(cursor, case_id, reason)

    def destroy_key(self, case_id: UUID) -> str | None:
        """Destroy the key and, in the same transaction, delete the parts of the case's
        files: sealed under that key they could not be opened any more, and gone they
        cannot be opened by a key recovered from a backup either."""
        with self.db.transaction() as cursor:
            destroy_key(cursor, case_id)
            attachments.delete_parts_of_case(cursor, case_id)
            return readmodels.office_of(cursor, case_id)

    def rotate_token(self, principal: access.Principal) -> str:
        """A new citizen token for the principal's case; raises access.Unauthenticated."""
        with self.db.transaction() as cursor:
            seed = token_seed(cursor, self.master, principal.case_id)
            return access.rotate_citizen_token(cursor, principal, seed)

    def contacts(self, cases: list[Case]) -> dict[UUID, dict[str, str] | None]:
        """Each case's contact, None once its key is gone; the keys read in one
        transaction."""
        if not cases:
            return {}
        with self.db.transaction() as cursor:
            keys = {case.id: stored_key(cursor, self.master, case.id) for case in cases}
        return {case.id: open_contact(keys[case.id], case.id, case.sealed_contact)
                if keys[case.id] else None for case in cases}


def erase_personal_data(tracking_code: str, erased_by: str = "operator") -> tuple[bool, str]:
    """Revoke every citizen token of the case, destroy the case's key and record
    PersonalDataErased. Safe to run again: the key stays destroyed and the event is
    recorded once. Returns (done, what happened)."""
    code = normalise_tracking_code(tracking_code)
    if code is None:
        return False, f"{tracking_code!r} is not a tracking code"
    store = open_store(Intake)
    db = Database(max_size=1)
    try:
        try:
            held = store.erase_personal_data(case_id_for(code), erased_by, CaseKeys(db))
        except AggregateNotFoundError:
            return False, f"no case {code}"
        if held == "none":
            return True, (f"case {code} holds no personal data (anonymous); nothing to "
                          "erase; its citizen tokens are revoked")
        # The old row version still holds the wrapped key until VACUUM removes it.
        with db.pool.connection() as conn:
            conn.autocommit = True
            conn.execute("VACUUM intake_case_keys")
            conn.execute("VACUUM intake_attachment_parts")
        return True, (f"personal data of case {code} erased: its key is destroyed, its "
                      "files deleted, the history reads it as erased and its citizen "
                      "tokens are revoked")
    finally:
        db.close()
        store.close()
