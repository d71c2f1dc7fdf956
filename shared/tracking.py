"""Tracking codes, the contract between a citizen and every service: the code a citizen
reads out or types, its one canonical form, and the case id that follows from it."""

from __future__ import annotations

from uuid import UUID, uuid5

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
