"""Office systems' webhook secrets, sealed: what signs each delivery is kept in no table,
log or event in plain text (the operators' `ourvoice webhooks` is in commands.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from functools import cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shared.config import master_key

# Webhook secrets sign what is sent, so they are kept sealed (AES-GCM), not hashed, under
# a key of their own derived from the master key: no table, log or event holds one in
# plain text, and a key for personal data never opens them (nor this one those).
PURPOSE = b"ourvoice:webhook-secrets:v1"
NONCE_BYTES = 12


@cache
def sealing_key() -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=PURPOSE).derive(master_key())


def seal_secret(webhook_id: uuid.UUID | str, secret: str) -> str:
    """The secret sealed to its webhook (its id is the associated data, so a sealed
    secret copied onto another webhook does not open). The nonce follows from the id:
    a webhook has one secret for life, and sealing it again (an old registration moved
    to the sealed form, a rebuild) gives the same row."""
    key, aad = sealing_key(), uuid.UUID(str(webhook_id)).bytes
    nonce = hmac.new(key, b"nonce:" + aad, hashlib.sha256).digest()[:NONCE_BYTES]
    return base64.b64encode(nonce + AESGCM(key).encrypt(nonce, secret.encode(), aad)).decode()


def open_secret(webhook_id: uuid.UUID | str, sealed: str) -> str:
    raw = base64.b64decode(sealed)
    return AESGCM(sealing_key()).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:],
                                         uuid.UUID(str(webhook_id)).bytes).decode()
