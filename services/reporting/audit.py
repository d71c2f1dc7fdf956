"""A case's history for auditors: every stored event of the case in every service's store,
in the order it happened, who did it and what the case was after it.

Each service gives its own part, read from its own store and replayed through its own
aggregates (see shared/history.py); reporting decodes no other service's events. Here
the parts are merged: put in the order things happened, the actors resolved, the states
each service knows folded into the case's state after each event, cut at a time.

An auditor never sees a citizen's personal data here: the actor is a role and an
office; what a citizen wrote (description, messages, comments) and staff notes are
left out; the contact shows only whether it is sealed, absent or erased."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from uuid import UUID
from zoneinfo import ZoneInfo

from shared.offices import describe

# Store order breaks ties of time: a case is submitted before it is routed.
STORES = ("intake", "routing", "notifications")
FINAL = ("closed", "withdrawn")
CAMBODIA = ZoneInfo("Asia/Phnom_Penh")
EMPTY_STATE = {"status": None, "office_id": None, "acknowledge_due": None, "resolve_due": None,
               "personal_data": None}


def references(parts: Mapping[str, list[dict]]) -> set[str]:
    """The actor references the parts name, for `principals` to look up."""
    return {e["by"] for part in parts.values() for e in part if e.get("by")}


def principals(cursor, refs: Iterable[str]) -> dict[str, dict]:
    """Who each reference names: an office system's principal (a UUID) or a named
    account (a username)."""
    ids, usernames = set(), set()
    for by in refs:
        try:
            ids.add(UUID(by))
        except ValueError:
            if by not in ("citizen", "operator"):
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


def _actor(entry: dict, known: Mapping[str, dict]) -> dict:
    by = entry.get("by")
    if by is None:
        return entry["actor"]
    if by == "citizen":
        return {"role": "citizen"}
    found = known.get(by)
    if found is None:
        return {"role": by} if by == "operator" else {"role": "unknown", "principal_id": by}
    if "username" in found:  # a named account: the person who acted
        return {"role": found["role"], "office_id": found["office_id"],
                "username": found["username"], "name": found["name"]}
    return {"role": found["role"], "office_id": found["office_id"], "principal_id": by}


def _order(entry: dict) -> tuple:
    store = entry["store"]
    return (datetime.fromisoformat(entry["occurred_at"]),
            STORES.index(store) if store in STORES else len(STORES), entry["position"])


def merge(tracking_code: str, case_id: str, parts: Mapping[str, list[dict]],
          known: Mapping[str, dict], as_of: datetime | None = None) -> dict | None:
    """The case's history up to `as_of` (all of it by default) from the services' parts
    and who their references name; None if no part has an event of it. The same parts
    give the same history in whatever order they and their entries come."""
    entries = sorted((e for part in parts.values() for e in part), key=_order)
    if not entries:
        return None
    as_of = as_of.astimezone(UTC) if as_of else None
    state, found = dict(EMPTY_STATE), []
    for entry in entries:
        if as_of is not None and datetime.fromisoformat(entry["occurred_at"]) > as_of:
            break
        known_after = dict(entry["state"])
        status = known_after.pop("status", None)
        if status is not None and state["status"] not in FINAL:
            state["status"] = status
        state.update(known_after)
        found.append({
            "occurred_at": entry["occurred_at"],
            "store": entry["store"],
            "position": entry["position"],
            "stream_id": entry["stream_id"],
            "sequence": entry["sequence"],
            "event_type": entry["event_type"],
            "actor": _actor(entry, known),
            "data": entry["data"],
            "state": dict(state),
        })
    return {"tracking_code": tracking_code, "case_id": str(case_id),
            "as_of": as_of.isoformat() if as_of else None,
            "state": dict(state) if found else None, "events": found}


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


def _routed(data: dict) -> str:
    return f"routed to {_office(data.get('office_id'))}"


def _moved(verb: str, why: Callable[[str | None], str]) -> Callable[[dict], str]:
    """A transfer or an escalation: from which office to which, and why."""
    def said(data: dict) -> str:
        return (f"{verb} from {_office(data.get('from_office_id'))} to "
                f"{_office(data.get('office_id'))}: " + why(data.get("reason")))
    return said


def _transfer_reason(reason: str | None) -> str:
    return f"\"{reason}\"" if reason else "reason withheld (a sensitive case)"


def _attachment(data: dict) -> str:
    return f"a {data.get('kind')} of {data.get('size')} bytes added"


def _deadline(passed: str) -> Callable[[dict], str]:
    def said(data: dict) -> str:
        return f"the deadline to {data['deadline']} {passed}" if data.get("deadline") else ""
    return said


# Where a case went and why, by event type; other events need no words beyond their name.
IN_WORDS: dict[str, Callable[[dict], str]] = {
    "CaseRouted": _routed,
    "CaseTransferred": _moved("transferred", _transfer_reason),
    "CaseEscalated": _moved("escalated",
                            lambda reason: ESCALATION_REASONS.get(reason, str(reason))),
    "AttachmentAdded": _attachment,
    "SlaWarning": _deadline("is near"),
    "SlaBreached": _deadline("passed"),
}


def _in_words(entry: dict) -> str:
    """Where a case went and why, said as an auditor would (the JSON has the fields)."""
    said = IN_WORDS.get(entry["event_type"])
    return said(entry["data"]) if said else ""


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
