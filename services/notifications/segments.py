"""How long an SMS is, as the network counts it, and how to make one fit.

A text of GSM-7 characters only travels 7 bits a character: 160 in one SMS, 153 a part
when it takes several (the rest of each part says how they join). Any other character
(Khmer, a curly quote) sends the whole text as UCS-2: 70 in one SMS, 67 a part, counted
in UTF-16 units. A character of GSM-7's extension table costs two, and neither it nor a
UTF-16 pair is ever split between parts."""

from __future__ import annotations

import unicodedata

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")
SINGLE = {"gsm7": 160, "ucs2": 70}
PART = {"gsm7": 153, "ucs2": 67}
COENG = "\u17d2"  # the Khmer sign that stacks the next consonant under this one
JOINERS = ("\u200d", "\u034f")
WORD_BREAKS = (" ", "\n", "\u200b")  # Khmer writes its word breaks as zero-width spaces
ELLIPSIS = {"gsm7": "...", "ucs2": "…"}


def encoding(text: str) -> str:
    return "gsm7" if all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text) else "ucs2"


def _units(char: str, coding: str) -> int:
    if coding == "gsm7":
        return 2 if char in GSM7_EXTENSION else 1
    return 2 if ord(char) > 0xFFFF else 1


def segments(text: str) -> int:
    """How many SMS the text takes (an empty text still takes one)."""
    coding = encoding(text)
    units = [_units(char, coding) for char in text]
    if sum(units) <= SINGLE[coding]:
        return 1
    parts, used = 1, 0
    for size in units:
        if used + size > PART[coding]:
            parts, used = parts + 1, 0
        used += size
    return parts


def boundary(text: str, index: int) -> bool:
    """Whether text may be cut before text[index] without breaking a character as
    people see it: a Khmer cluster (a consonant with its stacked consonants and vowel
    signs), a letter with its accents, an emoji with its joiners and modifiers."""
    if index <= 0 or index >= len(text):
        return True
    before, char = text[index - 1], text[index]
    if before == COENG or before in JOINERS or char in JOINERS:
        return False
    return not (unicodedata.category(char).startswith("M") or "\U0001f3fb" <= char <= "\U0001f3ff")


def shorten(text: str, length: int, ellipsis: str) -> str:
    """The text cut to at most `length` characters with the ellipsis (counted in), at
    the last word break if one is near the end, else between two characters as
    people see them."""
    if len(text) <= length:
        return text
    room = max(0, length - len(ellipsis))
    cut = room
    while cut > 0 and not boundary(text, cut):
        cut -= 1
    words = max((text.rfind(space, 0, cut + 1) for space in WORD_BREAKS), default=-1)
    if words > room * 0.7:  # a word break not far back: end on a whole word
        cut = words
    return text[:cut].rstrip(" \n\u200b") + ellipsis


def fit(render, text: str, limit: int) -> str:
    """The longest rendering within `limit` SMS: `render(shortened)` builds the message
    around a text people wrote (a resolution, a question), which is shortened with an
    ellipsis until the message fits; None when even an empty text does not."""
    whole = render(text)
    if segments(whole) <= limit:
        return whole
    coding = encoding(render(""))
    ellipsis = ELLIPSIS[coding if encoding(text) == coding else "ucs2"]
    low, high, best = 0, len(text), None
    while low <= high:  # the longest cut that fits, by bisection
        middle = (low + high) // 2
        candidate = render(shorten(text, middle, ellipsis)) if middle else None
        if candidate is not None and segments(candidate) <= limit:
            best, low = candidate, middle + 1
        else:
            high = middle - 1
    return best
