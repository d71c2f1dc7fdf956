"""Routing's part of a case's history, for reporting's audit (see shared/history.py):
the case's own stream, with where the case stood after each event (its status, the
office that has it, its deadlines)."""

from __future__ import annotations

from uuid import UUID

from services.routing.application import Routing
from shared.history import CaseHistory, entry, plain
from shared.logs import stream_events


def _actor(domain_event) -> dict | None:
    if type(domain_event).__name__ == "CaseFileOpened":
        # The reading names the reader's role and office itself, as they were then.
        return {"role": domain_event.role, "office_id": domain_event.office_id,
                "principal_id": str(domain_event.by)}
    return None  # the `by` it names, resolved by reporting, else the system


def case_history(cursor, case_id: str) -> list[dict]:
    """Every event of the case in routing's store, in log order."""
    found, case = [], None
    for position, domain_event in stream_events(cursor, Routing, [UUID(str(case_id))]):
        case = domain_event.mutate(case)
        state = {"status": case.status, "office_id": case.office_id,
                 "acknowledge_due": plain(case.acknowledge_due),
                 "resolve_due": plain(case.resolve_due)}
        found.append(entry("routing", position, domain_event, state=state,
                           actor=_actor(domain_event)))
    return found


# Declared on the Service class, for the composition layer (see shared/history.py).
HISTORY = CaseHistory(Routing, case_history)
