"""The citizen's side of a case: what was submitted, and who may follow it.

Pure domain: no I/O. Codes, tokens and keys are made by the service layer and passed in."""

from __future__ import annotations

import unicodedata
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

# Tracking codes are read out over the phone: no 0/O, 1/I/L.
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 10
CASE_ID_NAMESPACE = UUID("9f1c2a57-3b0e-4c59-a1d2-6f7572566f69")


def format_tracking_code(number: int) -> str:
    chars = []
    for _ in range(CODE_LENGTH):
        number, digit = divmod(number, len(ALPHABET))
        chars.append(ALPHABET[digit])
    code = "".join(chars)
    return f"{code[:5]}-{code[5:]}"


def normalise_tracking_code(text: str) -> str | None:
    """What a citizen typed, as the canonical code; None if it cannot be one."""
    code = "".join(text.split()).replace("-", "").upper()
    if len(code) != CODE_LENGTH or any(c not in ALPHABET for c in code):
        return None
    return f"{code[:5]}-{code[5:]}"


def case_id_for(tracking_code: str) -> UUID:
    """The case id follows from the tracking code, so a lookup needs no index."""
    return uuid5(CASE_ID_NAMESPACE, tracking_code)


def nfc(text: str) -> str:
    """Khmer can be typed in several code point orders; store one."""
    return unicodedata.normalize("NFC", text)


class Case(Aggregate):
    @staticmethod
    def create_id(case_id: UUID, **_: Any) -> UUID:
        return case_id

    @event("CaseSubmitted")
    def __init__(
        self,
        case_id: UUID,
        context: dict,
        type: str,
        category: str,
        description: str,
        language: str,
        anonymous: bool,
        gender: str,
        rating: int | None,
        citizen_token_hash: str,
        fingerprint: str,
        channel: str,
    ) -> None:
        self.tracking_code = context["tracking_code"]
        self.commune = context["commune"]
        self.type = type
        self.category = category
        self.description = description
        self.language = language
        self.anonymous = anonymous
        self.gender = gender
        self.rating = rating
        self.citizen_token_hash = citizen_token_hash
        self.fingerprint = fingerprint
        self.channel = channel
