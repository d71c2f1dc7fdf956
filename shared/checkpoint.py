"""Signed checkpoints of the hash chains: what whoever owns the database cannot undo.

A checkpoint lists the head of every chain (each store's, and the chained tables'):
its position, the hash of its last link, and the time, signed with an Ed25519 key that
lives in the services' environment (`OURVOICE_CHECKPOINT_KEY`), never in the database.
Reporting makes one every `OURVOICE_CHECKPOINT_SECONDS` and publishes it on the
`ourvoice.audit` exchange (an exchange of its own, so no consumer of `ourvoice.events`
ever sees one), where auditors' queues keep them; `ourvoice audit checkpoint` makes one
on demand. A chain cut short or rewritten afterwards no longer passes through a signed
head, and a new signature cannot be made without the key: `audit verify --against`
says so."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from shared.chain import Head, heads
from shared.settings import settings
from shared.topology import AUDIT

KIND = "ourvoice-chain-checkpoint"
ROUTING_KEY = "ChainCheckpoint"


class BadCheckpoint(ValueError):
    """A checkpoint that cannot be read, or whose signature does not hold."""


def private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(settings().checkpoint_key)


def public_key_text(key: Ed25519PublicKey) -> str:
    return base64.b64encode(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def public_key(text: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(_raw(text, "the public key"))


def _raw(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise BadCheckpoint(f"{what} must be the base64 of 32 bytes")
    return raw


def _signed_part(checkpoint: dict) -> bytes:
    """The bytes the signature covers: everything but the signature, canonical JSON."""
    body = {k: v for k, v in checkpoint.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def make(conn, stores, tables, key: Ed25519PrivateKey | None = None,
         now: datetime | None = None) -> dict:
    """A signed checkpoint of the chains' heads as they are now."""
    key = key or private_key()
    checkpoint = {
        "kind": KIND,
        "made_at": (now or datetime.now(UTC)).isoformat(),
        "public_key": public_key_text(key.public_key()),
        "chains": [head.as_json() for head in heads(conn, stores, tables)],
    }
    checkpoint["signature"] = base64.b64encode(key.sign(_signed_part(checkpoint))).decode()
    return checkpoint


def read(checkpoint: dict, trusted: Ed25519PublicKey) -> list[Head]:
    """The heads of a checkpoint whose signature holds for the trusted key; anything
    else (another key, an edited head, not a checkpoint at all) is BadCheckpoint."""
    try:
        if checkpoint.get("kind") != KIND:
            raise BadCheckpoint("this is not a chain checkpoint")
        signature = base64.b64decode(checkpoint["signature"], validate=True)
        made_at = datetime.fromisoformat(checkpoint["made_at"])
        chains = [Head(c["chain"], int(c["position"]), str(c["hash"]),
                       c.get("notification_id"), made_at) for c in checkpoint["chains"]]
    except BadCheckpoint:
        raise
    except (AttributeError, KeyError, TypeError, ValueError, binascii.Error) as error:
        raise BadCheckpoint(f"the checkpoint cannot be read: {error!r}") from None
    try:
        trusted.verify(signature, _signed_part(checkpoint))
    except InvalidSignature:
        raise BadCheckpoint(
            f"the checkpoint's signature does not hold for the public key "
            f"{public_key_text(trusted)}: it was not made with this deployment's key, or was "
            "changed after") from None
    return chains


def publish(publisher, checkpoint: dict) -> None:
    """To auditors' queues bound to `ourvoice.audit`, confirmed by the broker."""
    from shared.relay import OutgoingMessage

    publisher.publish([OutgoingMessage(
        routing_key=ROUTING_KEY, body=json.dumps(checkpoint).encode(), headers={},
        message_id=f"checkpoint:{checkpoint['made_at']}")])


def all_chains() -> tuple[list[str], tuple]:
    """The names of every store (the services that publish, each from its store) and
    every chained table."""
    from shared import access, accounts
    from shared.topology import PUBLISHERS

    return list(PUBLISHERS), access.CHAINED + accounts.CHAINED


def take_and_publish(amqp_uri: str) -> dict:
    """Make a checkpoint of the configured database and publish it (reporting's timer)."""
    import psycopg

    from shared.config import Postgres
    from shared.relay import ConfirmedPublisher

    stores, tables = all_chains()
    with psycopg.connect(Postgres.from_env().conninfo()) as conn:
        made = make(conn, stores, tables)
    publisher = ConfirmedPublisher(amqp_uri, exchange=AUDIT)
    try:
        publish(publisher, made)
    finally:
        publisher.close()
    return made
