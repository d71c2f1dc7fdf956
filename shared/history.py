"""A service's part of a case's history, as it hands it to reporting for an audit.

Each service reads its own store and replays its own aggregates; reporting only merges
the parts (it decodes no other service's events). A part is a list of entries, one per
stored event of the case, in the service's log order:

- `occurred_at`: when the event was recorded (ISO 8601, UTC);
- `store`: the store's name (`intake`, `routing`, `notifications`);
- `position`: the event's notification id in that store's log;
- `stream_id`, `sequence`: the aggregate it belongs to and its version there;
- `event_type`: the event's class name;
- either `by`: the raw actor reference the event names (a principal's id, a staff
  account's username, "operator"), which reporting resolves against
  `ourvoice_principals` and `ourvoice_staff_accounts`; or `actor`: who acted, given
  outright ({"role": "citizen"}, {"role": <erased_by>}, the reader of a case file,
  {"role": "system"});
- `data`: the event's fields fit for an auditor (see `public_data`);
- `state`: only what this service knows of the case after the event: routing its
  `status`, `office_id`, `acknowledge_due`, `resolve_due`; intake `personal_data`
  and `status` where the event changes it; notifications nothing.

An auditor never sees a citizen's personal data: what a citizen wrote (description,
messages, comments) and staff notes are withheld."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from shared.events import event_data

if TYPE_CHECKING:
    from shared.store import Projection

# Words of citizens and staff notes may name people: an audit shows that they exist only.
WITHHELD = ("text", "description", "comment", "question_id", "resolution_id", "messages",
            "sealed_contact", "citizen_token_hash", "fingerprint", "gender")
BOOKKEEPING = ("originator_id", "originator_version", "timestamp", "context", "originator_topic")


def plain(value: Any) -> Any:
    """A value as JSON carries it: times as ISO text, ids as text."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def public_data(domain_event: Any) -> dict:
    """The event's fields an auditor may read: a public event's as its schema publishes
    them; an internal one's fields with words and notes withheld."""
    data = event_data(domain_event)  # what is public is fit for an auditor
    if data is None:
        data = {k: v for k, v in vars(domain_event).items()
                if k not in BOOKKEEPING and k not in WITHHELD and k != "by"}
        if hasattr(domain_event, "text"):
            data["text"] = "withheld"
    return plain(data)


def entry(store: str, position: int, domain_event: Any, *, state: dict,
          actor: dict | None = None, data: dict | None = None) -> dict:
    """One entry of a part: the event's `by` for reporting to resolve, unless the
    service gives the `actor` outright."""
    found = {
        "occurred_at": domain_event.timestamp.isoformat(),
        "store": store,
        "position": position,
        "stream_id": str(domain_event.originator_id),
        "sequence": domain_event.originator_version,
        "event_type": type(domain_event).__name__,
    }
    by = getattr(domain_event, "by", None)
    if actor is None and by is not None:
        found["by"] = str(by)
    else:
        found["actor"] = actor or {"role": "system"}
    found["data"] = public_data(domain_event) if data is None else data
    found["state"] = state
    return found


@dataclass(frozen=True)
class CaseHistory:
    """A service's part of a case's history as the service declares it on its `Service`
    class (`history = CaseHistory(...)`), for the composition layer to find: `ourvoice
    audit history` reads the part from the store directly, without the services.

    - `store`: the store class the part is read from; a store whose tables were never
      created (a service that never ran) gives an empty part;
    - `read(cursor, case_id)`: the part, as the service's `case_history` RPC answers it;
    - `follows`: the projections of the store's log that `read` relies on, brought up to
      the log's last event first (the service that keeps them may not be running)."""

    store: type
    read: Callable[[Any, str], list[dict]]
    follows: Sequence[Projection] = ()
