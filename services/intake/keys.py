"""A case's own data key, and sealing with AES-GCM: the contact, the parts of its files and
the channels' conversation state are each sealed under a key with associated data that
binds the ciphertext to what it is (see privacy.py for the contact and the erasure,
attachments.py for the files)."""

from __future__ import annotations

import os
from uuid import UUID

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def unseal(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)


# The case id is bound into every ciphertext (as associated data), so a key or a sealed
# contact copied onto another case does not open.
def _key_aad(case_id: UUID) -> bytes:
    return b"ourvoice-case-key:" + case_id.bytes


def case_key(cursor, master: bytes, case_id: UUID) -> bytes | None:
    """The case's data key, made on first use. Retries of one submission that race each
    other all get the key that was stored first. None once the data was erased."""
    wrapped = seal(master, os.urandom(32), _key_aad(case_id))
    cursor.execute(
        """INSERT INTO intake_case_keys (case_id, wrapped_key) VALUES (%s, %s)
           ON CONFLICT (case_id) DO UPDATE SET case_id = EXCLUDED.case_id
           RETURNING wrapped_key""",
        (case_id, wrapped),
    )
    stored = cursor.fetchone()["wrapped_key"]
    return None if stored is None else unseal(master, bytes(stored), _key_aad(case_id))


def stored_key(cursor, master: bytes, case_id: UUID) -> bytes | None:
    cursor.execute("SELECT wrapped_key FROM intake_case_keys WHERE case_id = %s", (case_id,))
    row = cursor.fetchone()
    if row is None or row["wrapped_key"] is None:
        return None
    return unseal(master, bytes(row["wrapped_key"]), _key_aad(case_id))


def destroy_key(cursor, case_id: UUID) -> None:
    """Forget the key for good; the row stays as a tombstone, so a late retry of the
    submission cannot make a new key for the case."""
    cursor.execute(
        """INSERT INTO intake_case_keys (case_id, wrapped_key, erased_at) VALUES (%s, NULL, now())
           ON CONFLICT (case_id) DO UPDATE SET wrapped_key = NULL,
             erased_at = COALESCE(intake_case_keys.erased_at, now())""",
        (case_id,),
    )
