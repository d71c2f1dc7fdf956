"""What operators do with office systems' webhooks, for `ourvoice webhooks ...`:
register one (a URL, a secret and an area or office), list them, remove one, and see or
send again the deliveries given up after their last try (the dead letters)."""

from __future__ import annotations

import argparse
import secrets
import sys
import uuid

from shared.offices import describe
from shared.operations import Command


def _webhooks_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    adding = actions.add_parser(
        "add", help="POST every public event of an area or office to a URL, signed")
    adding.add_argument("--url", required=True)
    adding.add_argument("--secret", help="shared secret for the signature (made and shown once "
                        "if not given)")
    target = adding.add_mutually_exclusive_group(required=True)
    target.add_argument("--area", help="province, district or commune code (12, 1201, 120101)")
    target.add_argument("--office", help="office id (e.g. owso-1201)")
    actions.add_parser("list", help="the registered webhooks")
    removing = actions.add_parser("remove", help="stop sending to a webhook")
    removing.add_argument("webhook_id")
    dead = actions.add_parser(
        "dead-letters", help="deliveries given up after their last try (every channel)")
    dead.add_argument("--retry", metavar="DELIVERY_ID", help="queue this one again")


def webhooks(args: argparse.Namespace) -> int:
    """Register a webhook, list them, remove one; see or send again the dead letters."""
    from eventsourcing.persistence import IntegrityError

    from services.notifications import readmodels as views
    from services.notifications.application import Notifications, UnknownDelivery
    from services.notifications.domain import NotDue, Webhook
    from services.notifications.webhooks import seal_secret
    from shared.db import Database
    from shared.store import open_store

    store = open_store(Notifications)
    db = Database(max_size=1)
    try:
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
                done = store.requeue(args.retry, by="operator")
            except UnknownDelivery:
                print("delivery not found", file=sys.stderr)
                return 1
            except NotDue as refusal:
                print(refusal, file=sys.stderr)
                return 1
            except IntegrityError:
                print("changed at the same moment; try again", file=sys.stderr)
                return 1
            print(f"delivery {done.id} queued again")
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


COMMANDS = (Command("webhooks", "office systems' webhooks and dead letters", _webhooks_arguments,
                    webhooks),)
