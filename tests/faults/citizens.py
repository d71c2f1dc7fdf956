"""The citizens of the fault suite. Every other case is submitted with a name, phone and
email made up for it, and made distinctive so that finding one anywhere it should not be
names the citizen beyond doubt."""

from __future__ import annotations

import re

# The citizen's name, email and phone, each carrying the case's number. A phone is only
# digits, so it counts as found only standing on its own: never inside the hex of a hash,
# a UUID or a longer number.
PERSONAL_DATA = re.compile(
    r"Chaosname\d{5}"
    r"|citizen\d{5}@chaos\.example\.org"
    r"|(?<![0-9A-Za-z])(?:\+?855|00855|0)?129\d{6}(?![0-9A-Za-z])")


def gives_contact(number: int) -> bool:
    return number % 2 == 0


def complainant(number: int) -> dict:
    """Who submits case `number`: someone who can be told how it goes, or an anonymous
    citizen."""
    if not gives_contact(number):
        return {"anonymous": True, "gender": "female"}
    return {"anonymous": False, "name": f"Sokha Chaosname{number:05d}",
            "phone": f"+855129{number:06d}", "email": f"citizen{number:05d}@chaos.example.org",
            "gender": "female"}


def found_in(place: str, text: str, spot: str = "") -> list[tuple[str, str]]:
    """Each piece of personal data in `text`: the place (a table's column, a log), and
    the spot in it (a line, a message) with what was around it."""
    return [(place, f"{spot}{match.group()!r} in …{text[max(0, match.start() - 60):match.end() + 60]}…")
            for match in PERSONAL_DATA.finditer(text)]
