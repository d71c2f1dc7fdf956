"""Notifications' read models, each a projection of its own events kept in the same
transaction as its position in the log, so a rebuild gives the same rows:

- the outbox: every delivery with its state and when it may next be tried (the sender
  claims due rows from here; dead letters are the rows in state `dead`);
- the webhooks office systems registered."""

from __future__ import annotations

import threading
from datetime import datetime

from services.notifications.domain import Delivery, Subscription, Webhook
from services.notifications.webhooks import open_secret, seal_secret
from shared.remembered import Remembered
from shared.store import Projection, of_kinds

OPEN_STATES = ("due", "sending", "retrying")

OUTBOX_DDL = (
    """CREATE TABLE IF NOT EXISTS notifications_outbox (
        delivery_id uuid PRIMARY KEY,
        case_id uuid NOT NULL,
        tracking_code text NOT NULL,
        about_event uuid NOT NULL,
        about_type text NOT NULL,
        channel text NOT NULL,
        recipient_role text NOT NULL,
        recipient text NOT NULL,
        message text NOT NULL,
        state text NOT NULL,
        attempts integer NOT NULL DEFAULT 0,
        next_at timestamptz,
        last_error text,
        due_at timestamptz NOT NULL,
        finished_at timestamptz
    )""",
    # The sender's claim is an index range scan over what is open, whatever the history.
    "CREATE INDEX IF NOT EXISTS notifications_outbox_next "
    "ON notifications_outbox (channel, next_at) WHERE next_at IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS notifications_outbox_dead "
    "ON notifications_outbox (due_at) WHERE state = 'dead'",
)


def _due(cursor, event) -> None:
    cursor.execute(
        """INSERT INTO notifications_outbox (delivery_id, case_id, tracking_code, about_event,
               about_type, channel, recipient_role, recipient, message, state, next_at, due_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 'due', %s, %s)""",
        (event.originator_id, event.context["case_id"], event.context["tracking_code"],
         event.about_event, event.about_type, event.channel, event.recipient_role,
         event.recipient, event.message, event.timestamp, event.timestamp))


def _attempted(cursor, event) -> None:
    # A sender that dies mid-send leaves the row due again once its lease expires.
    cursor.execute(
        """UPDATE notifications_outbox SET state = 'sending', attempts = %s, next_at = %s
           WHERE delivery_id = %s""", (event.attempt, event.lease_until, event.originator_id))


def _sent(cursor, event) -> None:
    cursor.execute(
        """UPDATE notifications_outbox SET state = 'sent', next_at = NULL, finished_at = %s
           WHERE delivery_id = %s""", (event.timestamp, event.originator_id))


def _failed(cursor, event) -> None:
    cursor.execute(
        """UPDATE notifications_outbox SET state = %s, next_at = %s, last_error = %s,
               finished_at = %s WHERE delivery_id = %s""",
        ("retrying" if event.retry_at else "dead", event.retry_at, event.error,
         None if event.retry_at else event.timestamp, event.originator_id))


def _skipped(cursor, event) -> None:
    cursor.execute(
        """UPDATE notifications_outbox SET state = 'skipped', next_at = NULL, last_error = %s,
               finished_at = %s WHERE delivery_id = %s""", (event.reason, event.timestamp,
                                                            event.originator_id))


def _requeued(cursor, event) -> None:
    cursor.execute(
        """UPDATE notifications_outbox SET state = 'due', next_at = %s, finished_at = NULL
           WHERE delivery_id = %s""", (event.timestamp, event.originator_id))


# By the event's class: the legacy `Notification.NotificationSent` shares a name with
# `Delivery.NotificationSent` but was never a delivery, and has no row here.
OUTBOX_WRITES = {
    Delivery.NotificationDue: _due,
    Delivery.DeliveryAttempted: _attempted,
    Delivery.NotificationSent: _sent,
    Delivery.NotificationFailed: _failed,
    Delivery.NotificationSkipped: _skipped,
    Delivery.DeliveryRequeued: _requeued,
}


def apply_to_outbox(cursor, event) -> None:
    write = OUTBOX_WRITES.get(type(event))
    if write is not None:
        write(cursor, event)


def excluded(delivery_ids) -> str:
    """Deliveries a pass must not claim (under way or just done here), as one array
    literal: a pass passes it to a query for each channel, and the hundreds of ids it
    holds under load are written out once, not adapted one by one for every query."""
    return "{" + ",".join(map(str, delivery_ids)) + "}"


def claim(cursor, channel: str, now: datetime, limit: int, exclude: str) -> list:
    """Due deliveries of a channel, soonest first, locked so that another instance
    claiming at the same moment takes others; `exclude` is from `excluded`."""
    cursor.execute(
        """SELECT delivery_id FROM notifications_outbox
           WHERE channel = %s AND next_at IS NOT NULL AND next_at <= %s
             AND NOT (delivery_id = ANY(%s::uuid[]))
           ORDER BY next_at LIMIT %s FOR UPDATE SKIP LOCKED""",
        (channel, now, exclude, limit))
    return [row["delivery_id"] for row in cursor.fetchall()]


def dead_letters(cursor, limit: int = 500) -> list[dict]:
    cursor.execute(
        """SELECT delivery_id, tracking_code, about_type, channel, recipient_role, recipient,
                  message, attempts, last_error, due_at, finished_at
           FROM notifications_outbox WHERE state = 'dead' ORDER BY due_at LIMIT %s""", (limit,))
    return cursor.fetchall()


def next_due(cursor, exclude: str) -> datetime | None:
    """When the soonest delivery not under way here is due (None: none is)."""
    cursor.execute("SELECT min(next_at) AS next_at FROM notifications_outbox "
                   "WHERE next_at IS NOT NULL AND NOT (delivery_id = ANY(%s::uuid[]))",
                   (exclude,))
    return cursor.fetchone()["next_at"]


# Set when this process's projection changed the outbox: the sender looks at it again.
OUTBOX_CHANGED = threading.Event()

OUTBOX = Projection("notifications.outbox", OUTBOX_DDL, apply_to_outbox,
                    changed=OUTBOX_CHANGED.set, takes=of_kinds(OUTBOX_WRITES))

# -- webhooks ----------------------------------------------------------------------

WEBHOOKS_DDL = (
    """CREATE TABLE IF NOT EXISTS notifications_webhooks (
        webhook_id uuid PRIMARY KEY,
        url text NOT NULL,
        secret text NOT NULL,
        area text,
        office_id text,
        registered_at timestamptz NOT NULL,
        removed_at timestamptz
    )""",
    # Secrets are kept sealed; `secret` held them in plain text before, and is emptied
    # (see seal_plaintext_secrets) wherever a registration still has one there.
    "ALTER TABLE notifications_webhooks ADD COLUMN IF NOT EXISTS sealed_secret text",
    "ALTER TABLE notifications_webhooks ALTER COLUMN secret DROP NOT NULL",
)


def _registered(cursor, event) -> None:
    cursor.execute(
        """INSERT INTO notifications_webhooks (webhook_id, url, sealed_secret, area,
               office_id, registered_at) VALUES (%s, %s, %s, %s, %s, %s)""",
        (event.originator_id, event.url,
         event.sealed_secret or seal_secret(event.originator_id, event.secret),
         event.area, event.office_id, event.timestamp))


def _removed(cursor, event) -> None:
    cursor.execute("UPDATE notifications_webhooks SET removed_at = %s WHERE webhook_id = %s",
                   (event.timestamp, event.originator_id))


WEBHOOK_WRITES = {Webhook.WebhookRegistered: _registered, Webhook.WebhookRemoved: _removed}


def apply_to_webhooks(cursor, event) -> None:
    write = WEBHOOK_WRITES.get(type(event))
    if write is not None:
        write(cursor, event)


def subscriptions(cursor) -> tuple[Subscription, ...]:
    cursor.execute("SELECT webhook_id, area, office_id FROM notifications_webhooks "
                   "WHERE removed_at IS NULL")
    return tuple(Subscription(row["webhook_id"], row["area"], row["office_id"])
                 for row in cursor.fetchall())


def seal_plaintext_secrets(cursor) -> int:
    """Seal the secrets that registrations of the first version kept in plain text in
    this table; returns how many there were."""
    cursor.execute("SELECT webhook_id, secret FROM notifications_webhooks "
                   "WHERE secret IS NOT NULL FOR UPDATE")
    rows = cursor.fetchall()
    for row in rows:
        cursor.execute("UPDATE notifications_webhooks SET sealed_secret = %s, secret = NULL "
                       "WHERE webhook_id = %s",
                       (seal_secret(row["webhook_id"], row["secret"]), row["webhook_id"]))
    return len(rows)


def webhook(cursor, webhook_id: str) -> dict | None:
    """A webhook with its secret opened, for signing; the secret stays in memory."""
    cursor.execute("SELECT url, sealed_secret, secret, removed_at FROM notifications_webhooks "
                   "WHERE webhook_id = %s", (webhook_id,))
    row = cursor.fetchone()
    if row is None:
        return None
    secret = open_secret(webhook_id, row["sealed_secret"]) if row["sealed_secret"] \
        else row["secret"]
    return {"url": row["url"], "secret": secret, "removed_at": row["removed_at"]}


def list_webhooks(cursor) -> list[dict]:
    cursor.execute("SELECT webhook_id, url, area, office_id, registered_at FROM "
                   "notifications_webhooks WHERE removed_at IS NULL ORDER BY registered_at")
    return cursor.fetchall()


# The webhooks subscribed now, as every event needs them: read again when this process
# projected a registration or a removal, and at least every REREAD_SECONDS (another
# instance's).
SUBSCRIBED: Remembered[tuple[Subscription, ...]] = Remembered()

WEBHOOKS = Projection("notifications.webhooks", WEBHOOKS_DDL, apply_to_webhooks,
                      changed=SUBSCRIBED.forget, takes=of_kinds(WEBHOOK_WRITES))

PROJECTIONS = (OUTBOX, WEBHOOKS)
