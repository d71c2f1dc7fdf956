"""Phone numbers as SMS gateways take them: E.164 (`+85523111111`).

The office directory and citizens write Cambodian numbers the way people say them
(`023 111 111`, `012-345-678`); a gateway needs the country code. A number that cannot
be a phone number is refused with the reason, never sent on as it came."""

from __future__ import annotations

import re

CAMBODIA = "855"
# Cambodian numbers have 8 (landlines) or 9 (mobiles with 3-digit prefixes) digits after
# the trunk 0; E.164 allows 15 digits in all.
NATIONAL_DIGITS = (8, 9)
MAX_DIGITS = 15
MIN_DIGITS = 8
SEPARATORS = re.compile(r"[\s\-./()\u00a0]")


class NotAPhoneNumber(ValueError):
    """The text is not a phone number we can send to."""


def e164(number: str) -> str:
    """`023 111 111` -> `+85523111111`; `+855 12 345 678` and `00855...` keep their
    country; a number of another country given with its `+` or `00` is kept as it is."""
    text = SEPARATORS.sub("", str(number or "").strip())
    if not text:
        raise NotAPhoneNumber("no phone number")
    if text.startswith("+"):
        digits, international = text[1:], True
    elif text.startswith("00"):
        digits, international = text[2:], True
    else:
        digits, international = text, False
    if not digits.isdigit() or not digits.isascii():
        raise NotAPhoneNumber("a phone number has only digits, spaces, dashes and a leading +")
    if not international:
        if digits.startswith("0"):
            digits = CAMBODIA + digits[1:]
        elif not digits.startswith(CAMBODIA):
            raise NotAPhoneNumber("a Cambodian number starts with 0 (or +855)")
    if digits.startswith(CAMBODIA):
        national = digits[len(CAMBODIA):].removeprefix("0")  # +855 0.. written by mistake
        if len(national) not in NATIONAL_DIGITS or national.startswith("0"):
            raise NotAPhoneNumber("a Cambodian number has 8 or 9 digits after 0 or +855")
        return f"+{CAMBODIA}{national}"
    if not MIN_DIGITS <= len(digits) <= MAX_DIGITS or digits.startswith("0"):
        raise NotAPhoneNumber("an international number has 8 to 15 digits after +")
    return f"+{digits}"
