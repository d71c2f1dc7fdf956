"""Who is asking: a principal of one of the roles, and the refusal of one who is nobody.

Apart from shared/access.py (tokens) and shared/accounts.py (named accounts' sessions),
which both make principals."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

ROLES = ("staff", "ombudsman", "auditor", "admin")


def someone(role: str) -> str:
    """One of a role, as a sentence says it: "an ombudsman", "a citizen", "staff"."""
    if role == "staff":
        return role
    return f"{'an' if role[:1] in 'aeiou' else 'a'} {role}"


@dataclass(frozen=True)
class Principal:
    role: str  # one of ROLES, or "citizen"
    id: str
    office_id: str | None = None
    case_id: UUID | None = None
    token_version: int | None = None  # a citizen's: which of the case's tokens it is
    name: str | None = None  # a named account's display name (its id is the username)

    def works_at(self, office_id: str | None) -> bool:
        return self.role in ("staff", "ombudsman") and office_id is not None \
            and self.office_id == office_id


class Unauthenticated(Exception):
    """No token, or one that is unknown, expired or revoked (401)."""
