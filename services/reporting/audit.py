"""A case's history for auditors: every stored event of the case in every service's store,
in the order it happened, who did it and what the case was after it.

Read from the stores themselves, not from read models: every stream of the case, found
through `reporting_audit_streams_<store>` (case -> stream, kept by following each
store's log: intake and routing key the case by its id, notifications keep a stream per
delivery and one for the case's audience). The case's state after each event is what
replaying the services' own aggregates gives, event by event.

An auditor never sees a citizen's personal data here: the actor is a role and an
office; what a citizen wrote (description, messages, comments) and staff notes are
left out; the contact shows only whether it is sealed, absent or erased. Once a case's
key was destroyed its contact reads as erased in every version of the history."""

from __future__ import annotations

import logging
import time as clock
from datetime import UTC, datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from nameko.extensions import DependencyProvider

from shared import migrations
from shared.db import FOLLOWERS_DDL, Database
from shared.events import DATA_SCHEMAS, status_after
from shared.follower import LogFollower
from shared.logs import StoreLog, stream_events
from shared.offices import describe
from shared.store import CaseStore, Projection
from shared.tracking import case_id_for, normalise_tracking_code

log = logging.getLogger(__name__)

# Store order breaks ties of time: a case is submitted before it is routed.
STORES = ("intake", "routing", "notifications")
# Every store writes with the mapper of CaseStore (none configures its own), so its
# events are read here without importing the service that keeps it.
_LOGS = {store: type(store.title(), (CaseStore,), {"name": store}) for store in STORES}
FINAL = ("closed", "withdrawn")
CAMBODIA = ZoneInfo("Asia/Phnom_Penh")
# What a citizen does is recorded by intake; intake's other events name who did them.
CITIZEN_EVENTS = ("CaseSubmitted", "InformationProvided", "FeedbackReceived", "CaseAppealed",
                  "CaseWithdrawn")
# Words of citizens and staff notes may name people: an audit shows that they exist only.
WITHHELD = ("text", "description", "comment", "question_id", "resolution_id", "messages",
            "sealed_contact", "citizen_token_hash", "fingerprint", "gender")
BOOKKEEPING = ("originator_id", "originator_version", "timestamp", "context", "originator_topic")


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# -- where a case's streams are ----------------------------------------------------------
def _streams_ddl(store: str) -> tuple[str, ...]:
    return (f"""CREATE TABLE IF NOT EXISTS reporting_audit_streams_{store} (
                   case_id uuid NOT NULL,
                   stream_id uuid NOT NULL,
                   PRIMARY KEY (case_id, stream_id))""",)


def case_of(domain_event) -> UUID | None:
    """The case an event belongs to: the stream's own id for a case's events, the case
    named in its context or fields for events about one (a delivery, an audience);
    None for the rest (directories, webhooks)."""
    context = getattr(domain_event, "context", None) or {}
    named = context.get("case_id") or getattr(domain_event, "case_id", None)
    if named:
        return UUID(str(named))
    return domain_event.originator_id if context.get("tracking_code") else None


def _index(store: str):
    def apply(cursor, domain_event) -> None:
        case_id = case_of(domain_event)
        if case_id is not None:
            cursor.execute(f"INSERT INTO reporting_audit_streams_{store} (case_id, stream_id)"
                           " VALUES (%s, %s) ON CONFLICT DO NOTHING",
                           (case_id, domain_event.originator_id))

    return apply


STREAMS = {store: Projection(f"reporting.audit_streams.{store}", _streams_ddl(store),
                             _index(store)) for store in STORES}


def followers(db: Database) -> list[LogFollower]:
    found = []
    for store, projection in STREAMS.items():
        store_log = StoreLog(db, _LOGS[store])
        found.append(LogFollower(f"projection:{projection.name}", db, store_log.recorder,
                                 projection.handler(store_log)))
    return found


def catch_up(db: Database) -> None:
    """Bring the index up to every store's last event (for a history asked for while
    the reporting service is not running)."""
    db.migrate(FOLLOWERS_DDL, *[d for p in STREAMS.values() for d in p.ddl])
    for follower in followers(db):
        while follower.follow_once():
            pass


class StreamIndex(DependencyProvider):
    """Follows every store's log (internal events too, which the bus never carries) to
    know each case's streams. One green thread and two connections for all three."""

    idle_seconds = 0.5
    # Its tables, part of reporting's schema (shared/migrations.py finds them here).
    ddl = tuple(d for p in STREAMS.values() for d in p.ddl)

    def setup(self) -> None:
        self.db = Database(max_size=2)
        migrations.bring_up_to_date(self.container, self.db.pg)
        self.followers = followers(self.db)
        self.running = True

    def start(self) -> None:
        self.container.spawn_managed_thread(self.run, identifier="audit-streams")

    def run(self) -> None:
        while self.running:
            handled = 0
            for follower in self.followers:
                try:
                    handled += follower.follow_once()
                except Exception as error:  # a store not created yet, an outage
                    log.warning("%s: %s", follower.name, str(error)[:200])
            if not handled:
                clock.sleep(self.idle_seconds)

    def stop(self) -> None:
        self.running = False

    def kill(self) -> None:
        self.stop()


# -- the history ----------------------------------------------------------------------------
_SCHEMAS = {name: schema() for name, schema in DATA_SCHEMAS.items()}


def _data(event_type: str, domain_event: Any, contact: str) -> dict:
    schema = _SCHEMAS.get(event_type)
    if schema is not None:
        data = schema.dump(domain_event)  # what is public is fit for an auditor
    else:
        data = {k: v for k, v in vars(domain_event).items()
                if k not in BOOKKEEPING and k not in WITHHELD and k != "by"}
        if hasattr(domain_event, "text"):
            data["text"] = "withheld"
    if event_type == "CaseSubmitted":
        data["contact"] = contact
    return _plain(data)


def _actor(store: str, event_type: str, domain_event: Any, principals: dict) -> dict:
    by = getattr(domain_event, "by", None)
    if event_type == "CaseFileOpened":
        # The reading names the reader's role and office itself, as they were then.
        return {"role": domain_event.role, "office_id": domain_event.office_id,
                "principal_id": str(by)}
    if by is not None:
        if by == "citizen":
            return {"role": "citizen"}
        found = principals.get(str(by))
        if found is None:
            return {"role": by} if by == "operator" else {"role": "unknown", "principal_id": by}
        if "username" in found:  # a named account: the person who acted
            return {"role": found["role"], "office_id": found["office_id"],
                    "username": found["username"], "name": found["name"]}
        return {"role": found["role"], "office_id": found["office_id"], "principal_id": str(by)}
    if hasattr(domain_event, "erased_by"):
        return {"role": domain_event.erased_by}
    if store == "intake" and event_type in CITIZEN_EVENTS:
        return {"role": "citizen"}
    return {"role": "system"}


def _principals(cursor, events: list) -> dict[str, dict]:
    """Who each `by` names: an office system's principal (a UUID) or a named account (a
    username)."""
    ids, usernames = set(), set()
    for _, _, domain_event in events:
        by = str(getattr(domain_event, "by", "") or "")
        try:
            ids.add(UUID(by))
        except ValueError:
            if by and by not in ("citizen", "operator"):
                usernames.add(by)
    found = {}
    if ids:
        cursor.execute("SELECT id, role, office_id FROM ourvoice_principals WHERE id = ANY(%s)",
                       (list(ids),))
        found |= {str(row["id"]): row for row in cursor.fetchall()}
    if usernames:
        cursor.execute("SELECT username, name, role, office_id FROM ourvoice_staff_accounts"
                       " WHERE username = ANY(%s)", (list(usernames),))
        found |= {row["username"]: row for row in cursor.fetchall()}
    return found


def history(cursor, tracking_code: str, as_of: datetime | None = None) -> dict | None:
    """The case's history up to `as_of` (all of it by default), or None if no store
    holds an event of it."""
    code = normalise_tracking_code(tracking_code)
    if code is None:
        return None
    case_id = case_id_for(code)
    cursor.execute("SELECT store FROM unnest(%s::text[]) store"
                   " WHERE to_regclass(store || '_events') IS NOT NULL", (list(STORES),))
    present = [row["store"] for row in cursor.fetchall()]  # a service that never ran has none
    streams = {}
    for store in present:
        cursor.execute(f"SELECT stream_id FROM reporting_audit_streams_{store}"
                       " WHERE case_id = %s", (case_id,))
        # The case's own stream even before the index caught up with it.
        streams[store] = {case_id, *(row["stream_id"] for row in cursor.fetchall())}
    events = []
    for store, ids in streams.items():
        events += [(store, position, event) for position, event in
                   stream_events(cursor, _LOGS[store], ids)]
    if not events:
        return None
    events.sort(key=lambda e: (e[2].timestamp, STORES.index(e[0]) if e[0] in STORES
                               else len(STORES), e[1]))
    principals = _principals(cursor, events)

    aggregates: dict[tuple[str, UUID], Any] = {}
    submitted = None
    for store, _, domain_event in events:  # the case as intake has it now: is it erased?
        if store == "intake" and domain_event.originator_id == case_id:
            submitted = domain_event.mutate(submitted)
    contact = getattr(submitted, "personal_data", "none")
    contact = {"kept": "sealed"}.get(contact, contact)

    as_of = as_of.astimezone(UTC) if as_of else None
    aggregates.clear()
    state = {"status": None, "office_id": None, "acknowledge_due": None, "resolve_due": None,
             "personal_data": None}
    entries = []
    for store, position, domain_event in events:
        if as_of is not None and domain_event.timestamp > as_of:
            break
        key = (store, domain_event.originator_id)
        aggregate = aggregates[key] = domain_event.mutate(aggregates.get(key))
        event_type = type(domain_event).__name__
        data = _data(event_type, domain_event, contact)
        if state["status"] not in FINAL:
            if store == "routing":
                state["status"] = aggregate.status
            elif store == "intake":
                state["status"] = status_after(event_type, vars(domain_event)) \
                    or state["status"]
        if store == "routing":
            state.update(office_id=aggregate.office_id,
                         acknowledge_due=_plain(aggregate.acknowledge_due),
                         resolve_due=_plain(aggregate.resolve_due))
        elif store == "intake":
            state["personal_data"] = {"kept": "sealed"}.get(aggregate.personal_data,
                                                            aggregate.personal_data)
            if contact == "erased" and state["personal_data"] == "sealed":
                state["personal_data"] = "erased"  # the key is gone: nothing opens it now
        entries.append({
            "occurred_at": domain_event.timestamp.isoformat(),
            "store": store,
            "position": position,
            "stream_id": str(domain_event.originator_id),
            "sequence": domain_event.originator_version,
            "event_type": event_type,
            "actor": _actor(store, event_type, domain_event, principals),
            "data": data,
            "state": dict(state),
        })
    return {"tracking_code": code, "case_id": str(case_id),
            "as_of": as_of.isoformat() if as_of else None,
            "state": dict(state) if entries else None, "events": entries}


# Why a case went up to an ombudsman, in words.
ESCALATION_REASONS = {
    "breach": "the office let a deadline pass",
    "appeal": "the citizen appealed",
    "transfers": "it was transferred too often",
    "ombudsman-breach": "the ombudsman let a deadline pass",
}


def _office(office_id: str | None) -> str:
    found = describe(office_id) if office_id else None
    return f"{found.name_en} ({office_id})" if found else str(office_id)


def _in_words(entry: dict) -> str:
    """Where a case went and why, said as an auditor would (the JSON has the fields)."""
    data, kind = entry["data"], entry["event_type"]
    if kind == "CaseRouted":
        return f"routed to {_office(data.get('office_id'))}"
    if kind == "CaseTransferred":
        reason = data.get("reason")
        return (f"transferred from {_office(data.get('from_office_id'))} to "
                f"{_office(data.get('office_id'))}: "
                + (f"\"{reason}\"" if reason else "reason withheld (a sensitive case)"))
    if kind == "CaseEscalated":
        reason = data.get("reason")
        return (f"escalated from {_office(data.get('from_office_id'))} to "
                f"{_office(data.get('office_id'))}: "
                + ESCALATION_REASONS.get(reason, str(reason)))
    if kind in ("SlaWarning", "SlaBreached") and data.get("deadline"):
        passed = "passed" if kind == "SlaBreached" else "is near"
        return f"the deadline to {data['deadline']} {passed}"
    return ""


def local_time(moment: str | datetime, zone: ZoneInfo) -> str:
    """An instant as a clock in `zone` shows it, with the zone's offset."""
    instant = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return instant.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")


def as_text(found: dict, zone: ZoneInfo = CAMBODIA) -> str:
    """The history as an auditor reads it in a terminal: times as clocks in `zone`
    show them (Cambodia's by default), where the case went and why in words."""
    lines = []
    state = found["state"]
    when = (f"as it stood at {local_time(found['as_of'], zone)} ({zone.key})"
            if found["as_of"] else "as it stands now")
    if state is None:
        lines.append(f"Case {found['tracking_code']}: nothing had happened yet {when[3:]}.")
        return "\n".join(lines)
    lines.append(f"Case {found['tracking_code']} ({found['case_id']}), {when}: "
                 f"{state['status']}" + (f" at {state['office_id']}" if state["office_id"] else "")
                 + f"; personal data {state['personal_data']}; {len(found['events'])} events")
    lines.append(f"Times in {zone.key}.")
    for entry in found["events"]:
        actor = entry["actor"]
        who = actor["role"] + (f" of {actor['office_id']}" if actor.get("office_id") else "")
        if actor.get("username"):
            who += f" ({actor['username']})"
        elif actor.get("principal_id"):
            who += f" ({actor['principal_id'][:8]})"
        after = entry["state"]
        lines.append(
            f"{local_time(entry['occurred_at'], zone):<24}"
            f"  {entry['store'] + '#' + str(entry['position']):<18}"
            f"  {entry['event_type']:<26}  {who:<40}  -> {after['status']}"
            + (f" at {after['office_id']}" if after["office_id"] else ""))
        if words := _in_words(entry):
            lines.append(f"{'':<24}  {words}")
    return "\n".join(lines)
