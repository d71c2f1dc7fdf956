"""What operators do with office systems' webhooks, for `ourvoice webhooks ...`:
register one (a URL, a secret and an area or office), list them, remove one, and see or
send again the deliveries given up after their last try (the dead letters)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import sys
import uuid
from functools import cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shared.config import master_key
from shared.offices import describe

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


def command(args) -> int:
    from services.notifications import readmodels as views
    from services.notifications.domain import Webhook
    from services.notifications.service import Notifications, requeue
    from shared.db import Database
    from shared.store import open_store
    from shared.web import HttpError

    store = open_store(Notifications)
    db = Database(max_size=1)
    try:
        db.migrate(*views.WEBHOOKS_DDL, *views.OUTBOX_DDL)
        with db.transaction() as cursor:
            views.seal_plaintext_secrets(cursor)
        if args.action == "add":
            if args.office and describe(args.office) is None:
                print(f"no such office: {args.office}", file=sys.stderr)
                return 2
            secret = args.secret or secrets.token_urlsafe(32)
            try:
                hook = Webhook.register(webhook_id=uuid.uuid4(), url=args.url, secret=secret,
                                        area=args.area, office_id=args.office, by="operator",
                                        seal=seal_secret)
            except ValueError as error:
                print(error, file=sys.stderr)
                return 2
            store.record(hook)
            print(f"webhook {hook.id} registered for {args.area or args.office}; it receives "
                  "the events recorded from now on")
            if not args.secret:
                print("its secret is shown once:")
                print(secret)
            return 0
        if args.action == "list":
            with db.transaction() as cursor:
                for row in views.list_webhooks(cursor):
                    print(f"{row['webhook_id']}  {row['area'] or row['office_id']:<22} "
                          f"{row['url']}")
            return 0
        if args.action == "remove":
            try:
                hook = store.repository.get(uuid.UUID(args.webhook_id))
            except Exception:
                hook = None
            if not isinstance(hook, Webhook) or hook.removed:
                print(f"no webhook {args.webhook_id} to remove", file=sys.stderr)
                return 1
            hook.remove(by="operator")
            store.record(hook)
            print(f"webhook {args.webhook_id} removed")
            return 0
        if args.retry:
            try:
                done = requeue(store, args.retry, by="operator")
            except HttpError as refusal:
                print(next(iter(refusal.errors.values()))[0], file=sys.stderr)
                return 1
            print(f"delivery {done['delivery_id']} queued again")
            return 0
        with db.transaction() as cursor:
            rows = views.dead_letters(cursor)
        for row in rows:
            print(f"{row['delivery_id']}  {row['tracking_code']}  {row['about_type']:<22} "
                  f"{row['channel']:<8} {row['recipient_role']}:{row['recipient']}  "
                  f"tries {row['attempts']}  {row['last_error']}")
        print(f"{len(rows)} dead letter(s)")
        return 0
    finally:
        db.close()
        store.close()
