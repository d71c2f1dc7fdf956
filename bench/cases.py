"""Cases and messages shaped like the real ones, for the benchmarks that bypass HTTP."""

from __future__ import annotations

import hashlib
import json
import secrets

from services.intake.application import fingerprint, new_tracking_code
from services.intake.domain import Case, nfc
from shared.events import public_event, routing_key
from shared.tracking import case_id_for
from tests.system import complaint

# Valid communes in four provinces, so routing keys and offices vary as in real traffic.
COMMUNES = ("120101", "120109", "010201", "170101", "020101")


def new_case(commune: str) -> Case:
    """A case built the way intake's submit builds one from a request body. Only the
    citizen's token is made here: what the case keeps of it is a SHA-256 hex digest,
    and how the token itself is derived does not change what is stored."""
    payload = complaint(location={"commune": commune})
    tracking_code = new_tracking_code(None)
    case_id = case_id_for(tracking_code)
    return Case(
        case_id=case_id,
        context={"tracking_code": tracking_code, "commune": commune, "office_id": None},
        type=payload["type"],
        category=payload["category"],
        description=nfc(payload["description"]),
        language=payload["language"],
        anonymous=payload["complainant"]["anonymous"],
        gender=payload["complainant"]["gender"],
        rating=payload.get("rating"),
        citizen_token_hash=hashlib.sha256(secrets.token_bytes(32)).hexdigest(),
        fingerprint=fingerprint(payload),
        channel="app",
    )


def sample_message() -> tuple[str, bytes]:
    """The routing key and body the relay would publish for a new case, so the raw
    publish baselines move messages of the same size and routing as the relay's."""
    (submitted,) = new_case(COMMUNES[0]).collect_events()
    envelope = public_event("intake", 1, submitted)
    assert envelope is not None
    key = routing_key(envelope["event_type"], envelope["location"])
    return key, json.dumps(envelope, ensure_ascii=False).encode()
