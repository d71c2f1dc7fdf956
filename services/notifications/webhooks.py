"""What operators do with office systems' webhooks, for `ourvoice webhooks ...`:
register one (a URL, a secret and an area or office), list them, remove one, and see or
send again the deliveries given up after their last try (the dead letters)."""

from __future__ import annotations

import secrets
import sys
import uuid

from shared.offices import describe


def command(args) -> int:
    from services.notifications import views
    from services.notifications.domain import Webhook
    from services.notifications.service import Notifications, requeue
    from shared.db import Database
    from shared.store import open_store
    from shared.web import HttpError

    store = open_store(Notifications)
    db = Database(max_size=1)
    try:
        db.migrate(*views.WEBHOOKS_DDL, *views.OUTBOX_DDL)
        if args.action == "add":
            if args.office and describe(args.office) is None:
                print(f"no such office: {args.office}", file=sys.stderr)
                return 2
            secret = args.secret or secrets.token_urlsafe(32)
            try:
                hook = Webhook.register(webhook_id=uuid.uuid4(), url=args.url, secret=secret,
                                        area=args.area, office_id=args.office, by="operator")
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
