"""The guided conversation a citizen has by SMS or chat: one message in, the replies out,
and, once everything a case needs is known, the submission to record. Channel-neutral:
the adapters (services/intake/conversations.py) turn a gateway's or a messenger's message
into `step` and its replies back into theirs.

Pure: no I/O but reading the hotlines' data file once. The conversation's state is a
plain dict (JSON), kept by the adapter between messages and dropped when the
conversation ends. Its steps: language, case type, category, province, district,
commune, then the description (an evaluation: a rating and an optional comment), how to
be contacted, gender, and a summary to confirm. `state["id"]` names the conversation
(the adapter derives the submission's idempotency key from it). Every question is answered by a number
of the choices offered (a place also by its name); anything else asks again, with a hint.
STATUS <code>, HELP and STOP work at any step."""

from __future__ import annotations

import secrets
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path

import yaml

from services.intake import places
from services.intake.domain import nfc
from services.intake.schemas import DESCRIPTION_MAX, normalise_phone
from shared.categories import CASE_TYPES, categories
from shared.tracking import normalise_tracking_code

VERSION = 1
HOTLINES = Path(__file__).with_name("hotlines.yaml")
LANGUAGE_WORDS = {"1": "km", "km": "km", "khmer": "km", "ខ្មែរ": "km", "2": "en", "en": "en",
                  "english": "en", "អង់គ្លេស": "en"}
STOP_WORDS = {"stop", "cancel", "ឈប់", "បោះបង់"}
HELP_WORDS = {"help", "ជំនួយ"}
STATUS_WORDS = {"status", "ស្ថានភាព"}
NEW_WORDS = {"new", "ថ្មី"}
DONE_WORDS = {"done", "រួចរាល់", "រួច"}
GENDER_CHOICES = ("female", "male", "other", "undisclosed")
# How much of a list one reply shows, in characters: about two SMS of Latin letters, or
# three of Khmer (70 characters each in UCS-2). "0" shows the next part.
PAGE = {"en": 250, "km": 180}
EXCERPT = 60

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "complaint": "Complaint",
        "support": "Request for support",
        "information": "Request for information",
        "evaluation": "Rate a service",
        "type": "What would you like to send?",
        "category": "Which service is it about?",
        "more": "0 More",
        "province": "Which province? Type its name or a number:",
        "district": "Which district of {place}? Type its name or a number:",
        "commune": "Which commune of {place}? Type its name or a number:",
        "which": "Which one do you mean?",
        "not_found": "No place by that name. Check the spelling, or choose a number.",
        "too_many": "Many places match: type more of the name.",
        "describe_complaint": "Tell us what happened, in one or several messages. "
                              "Send DONE when finished.",
        "describe_support": "Tell us what help you need, in one or several messages. "
                            "Send DONE when finished.",
        "describe_information": "What would you like to know? One or several messages; "
                                "send DONE when finished.",
        "received": "Received. Send more, or 1 (DONE) to finish.",
        "empty": "Please describe it first, then send DONE.",
        "too_long": "Too long: {n} more characters at most. Send a shorter text, or DONE.",
        "rating": "How do you rate the service, from 1 (very poor) to 5 (very good)?",
        "comment": "Any comment? Send it, then 1 (DONE). Or send 1 to skip.",
        "contact_sender": "May the office contact you at this number?\n1 Yes\n"
                          "2 No, stay anonymous",
        "contact_other": "May the office contact you?\n1 Yes, by phone\n2 No, stay anonymous",
        "phone": "Type your phone number (e.g. 012 345 678), or 0 to stay anonymous.",
        "bad_phone": "That is not a Cambodian phone number.",
        "gender": "Your gender? (optional, for statistics only)\n1 Female\n2 Male\n3 Other\n"
                  "4 Prefer not to say",
        "check": "Please check:",
        "kind": "{kind}: {category}",
        "place": "Place: {place}",
        "rated": "Rating: {n}/5",
        "contact": "Contact: {phone}",
        "anonymous": "Anonymous",
        "confirm": "1 Send\n2 Start again",
        "choose": "Please reply with a number from 1 to {n}.",
        "recorded": "Recorded. Your tracking code: {code}. Send STATUS {code} to follow it.",
        "hotlines": "For urgent help, call: {lines}.",
        "stopped": "Stopped; nothing was sent. Send any message to start again.",
        "help": "Our Voice: send a complaint, a request or a rating step by step; reply with "
                "the numbers offered. STATUS <code>: follow a case. STOP: end.",
        "begin": "Send any message to begin.",
        "status_hint": "Send STATUS and your tracking code, e.g. STATUS ABCDE-23456.",
        "status": "Case {code}: {status}.",
        "office": "Office: {office}.",
        "deadline": "Expected by {deadline}.",
        "no_case": "No case has the tracking code {code}.",
        "added": "Your message was added to case {code}. To send a new case, send NEW.",
        "refused": "Sorry, the case could not be recorded ({fields}). Send any message to "
                   "start again.",
    },
    "km": {
        "complaint": "ពាក្យបណ្ដឹង",
        "support": "សំណើសុំជំនួយ",
        "information": "សំណើសុំព័ត៌មាន",
        "evaluation": "វាយតម្លៃសេវា",
        "type": "តើអ្នកចង់ផ្ញើអ្វី?",
        "category": "ទាក់ទងនឹងសេវាអ្វី?",
        "more": "0 បន្ថែមទៀត",
        "province": "នៅខេត្ត/រាជធានីណា? វាយឈ្មោះ ឬលេខ៖",
        "district": "នៅស្រុក/ខណ្ឌណា ក្នុង{place}? វាយឈ្មោះ ឬលេខ៖",
        "commune": "នៅឃុំ/សង្កាត់ណា ក្នុង{place}? វាយឈ្មោះ ឬលេខ៖",
        "which": "តើអ្នកចង់និយាយពីមួយណា?",
        "not_found": "រកមិនឃើញឈ្មោះនេះទេ។ សូមពិនិត្យអក្ខរាវិរុទ្ធ ឬជ្រើសលេខ។",
        "too_many": "មានកន្លែងច្រើនពេក៖ សូមវាយឈ្មោះឲ្យបានពេញ។",
        "describe_complaint": "សូមរៀបរាប់ពីអ្វីដែលបានកើតឡើង អាចផ្ញើច្រើនសារ។ "
                              "ផ្ញើ រួចរាល់ ពេលចប់។",
        "describe_support": "សូមប្រាប់ពីជំនួយដែលអ្នកត្រូវការ អាចផ្ញើច្រើនសារ។ "
                            "ផ្ញើ រួចរាល់ ពេលចប់។",
        "describe_information": "តើអ្នកចង់ដឹងអ្វី? អាចផ្ញើច្រើនសារ។ ផ្ញើ រួចរាល់ ពេលចប់។",
        "received": "បានទទួល។ ផ្ញើបន្ថែម ឬ 1 (រួចរាល់) ដើម្បីបញ្ចប់។",
        "empty": "សូមរៀបរាប់ជាមុនសិន រួចផ្ញើ រួចរាល់។",
        "too_long": "វែងពេក៖ នៅសល់តែ {n} តួអក្សរ។ ផ្ញើអត្ថបទខ្លីជាងនេះ ឬ រួចរាល់។",
        "rating": "តើអ្នកវាយតម្លៃសេវានេះប៉ុន្មាន ពី 1 (អន់ណាស់) ដល់ 5 (ល្អណាស់)?",
        "comment": "មានមតិយោបល់ទេ? ផ្ញើមក រួច 1 (រួចរាល់)។ ឬផ្ញើ 1 ដើម្បីរំលង។",
        "contact_sender": "តើការិយាល័យអាចទាក់ទងអ្នកតាមលេខនេះបានទេ?\n1 បាទ/ចាស\n"
                          "2 ទេ សូមរក្សាអនាមិក",
        "contact_other": "តើការិយាល័យអាចទាក់ទងអ្នកបានទេ?\n1 បាទ/ចាស តាមទូរស័ព្ទ\n"
                         "2 ទេ សូមរក្សាអនាមិក",
        "phone": "សូមវាយលេខទូរស័ព្ទរបស់អ្នក (ឧ. 012 345 678) ឬ 0 ដើម្បីរក្សាអនាមិក។",
        "bad_phone": "លេខនេះមិនមែនជាលេខទូរស័ព្ទកម្ពុជាទេ។",
        "gender": "ភេទរបស់អ្នក? (មិនចាំបាច់ សម្រាប់តែស្ថិតិ)\n1 ស្រី\n2 ប្រុស\n3 ផ្សេងទៀត\n"
                  "4 មិនចង់ប្រាប់",
        "check": "សូមពិនិត្យ៖",
        "kind": "{kind}៖ {category}",
        "place": "ទីកន្លែង៖ {place}",
        "rated": "ពិន្ទុ៖ {n}/5",
        "contact": "ទាក់ទងតាម៖ {phone}",
        "anonymous": "អនាមិក",
        "confirm": "1 ផ្ញើ\n2 ចាប់ផ្ដើមម្ដងទៀត",
        "choose": "សូមឆ្លើយដោយលេខពី 1 ដល់ {n}។",
        "recorded": "បានកត់ត្រា។ លេខតាមដានរបស់អ្នក៖ {code}។ ផ្ញើ STATUS {code} ដើម្បីតាមដាន។",
        "hotlines": "ត្រូវការជំនួយបន្ទាន់ សូមហៅ៖ {lines}។",
        "stopped": "បានបញ្ឈប់ គ្មានអ្វីត្រូវបានផ្ញើទេ។ ផ្ញើសារណាមួយដើម្បីចាប់ផ្ដើមម្ដងទៀត។",
        "help": "សំឡេងយើង៖ ផ្ញើពាក្យបណ្ដឹង សំណើ ឬការវាយតម្លៃ មួយជំហានម្ដងៗ ដោយឆ្លើយជាលេខ។ "
                "STATUS លេខតាមដាន៖ មើលស្ថានភាព។ STOP (ឈប់)៖ បញ្ឈប់។",
        "begin": "ផ្ញើសារណាមួយដើម្បីចាប់ផ្ដើម។",
        "status_hint": "ផ្ញើ STATUS និងលេខតាមដាន ឧ. STATUS ABCDE-23456។",
        "status": "ករណី {code}៖ {status}។",
        "office": "ការិយាល័យ៖ {office}។",
        "deadline": "ត្រូវឆ្លើយតបមុន {deadline}។",
        "no_case": "រកមិនឃើញករណីដែលមានលេខតាមដាន {code} ទេ។",
        "added": "សាររបស់អ្នកត្រូវបានបន្ថែមទៅករណី {code}។ ដើម្បីផ្ញើករណីថ្មី ផ្ញើ NEW។",
        "refused": "សូមអភ័យទោស ករណីនេះមិនអាចកត់ត្រាបានទេ ({fields})។ "
                   "ផ្ញើសារណាមួយដើម្បីចាប់ផ្ដើមម្ដងទៀត។",
    },
}
LANGUAGE_PROMPT = "សំឡេងយើង / Our Voice\nជ្រើសភាសា / Choose a language:\n1 ខ្មែរ\n2 English"
# The status of a case (shared/events.py STATUS_AFTER) in words: (English, Khmer).
STATUS_WORDS_OF = {
    "submitted": ("received", "បានទទួល"),
    "routed": ("sent to the office that handles it", "បានបញ្ជូនទៅការិយាល័យទទួលបន្ទុក"),
    "acknowledged": ("being handled by the office", "ការិយាល័យកំពុងដោះស្រាយ"),
    "waiting-for-citizen": ("the office waits for information from you",
                            "ការិយាល័យកំពុងរង់ចាំព័ត៌មានពីអ្នក"),
    "resolved": ("resolved", "បានដោះស្រាយ"),
    "escalated": ("with the ombudsman", "នៅអង្គភាពទទួលបណ្តឹង"),
    "closed": ("closed", "បានបិទ"),
    "withdrawn": ("withdrawn", "បានដកវិញ"),
}


@dataclass(frozen=True)
class Turn:
    """What one inbound message leads to.

    state:    the conversation's state to keep, or None when the conversation is over
              (recorded, stopped, or a one-off command answered).
    replies:  the texts to send back, in order.
    submit:   a SubmitCase payload (services/intake/schemas.py) to record now, when the
              dialogue has all it needs; the adapter records it through the same path as
              the app, then calls `recorded` with the state it passed in (state is None
              here: the conversation is over) for the replies that carry the tracking code.
    command:  a command the adapter answers with data the dialogue has not got:
              ("status", tracking_code) or ("message", text) for a message to the sender's
              open case; None otherwise. Its answer is the only reply (`status_reply`,
              `added_reply`); the conversation under way, if any, goes on after it.
    language: the language of the replies ("km" or "en"), for the adapter's own.
    """

    state: dict | None
    replies: list[str] = field(default_factory=list)
    submit: dict | None = None
    command: tuple | None = None
    language: str = "km"


@cache
def hotlines() -> tuple[dict, ...]:
    """The national hotlines (services/intake/hotlines.yaml): each {"number", "name_km",
    "name_en"}. Read once: a service restarted after operators edit the file gives them."""
    rows = yaml.safe_load(HOTLINES.read_text(encoding="utf-8")) or []
    for row in rows:
        if not {"number", "name_km", "name_en"} <= set(row):
            raise ValueError(f"{HOTLINES}: each hotline needs number, name_km and name_en")
    return tuple({"number": str(r["number"]), "name_km": r["name_km"], "name_en": r["name_en"]}
                 for r in rows)


def step(state: dict | None, text: str, sender: str, linked: bool = False) -> Turn:
    """The next turn of the conversation with `sender` (a phone number in E.164 for SMS,
    None-like "" for a messenger that gives no number). `linked`: the sender has an open
    case they chose to be contacted about from this number, so that text outside a
    conversation is a message to that case (NEW starts a conversation all the same)."""
    text = nfc(text or "").strip()
    if state is not None and (state.get("v") != VERSION or state.get("step") not in STEPS):
        state = None  # kept by another version: start afresh rather than misread it
    language = state["lang"] if state and state.get("lang") else guess_language(text)
    words = text.casefold().split()
    said = " ".join(words)
    if said in STOP_WORDS:
        return Turn(None, [TEXTS[language]["stopped"]], language=language)
    if said in HELP_WORDS:
        if state is None:
            return Turn(None, [f"{TEXTS[language]['help']} {TEXTS[language]['begin']}"],
                        language=language)
        return _ask(state, sender, hint=TEXTS[language]["help"])
    if words and words[0] in STATUS_WORDS and _looks_like_status(words[1:]):
        code = normalise_tracking_code("".join(words[1:]))
        if code is None:
            return Turn(state, [TEXTS[language]["status_hint"]], language=language)
        return Turn(state, command=("status", code), language=language)
    if state is None:
        if linked and said not in NEW_WORDS:
            return Turn(None, command=("message", text), language=language)
        state = {"v": VERSION, "id": secrets.token_hex(8), "step": "language"}
        chosen = LANGUAGE_WORDS.get(said)
        if chosen is None:
            return Turn(state, [LANGUAGE_PROMPT], language=language)
        return _ask({**state, "lang": chosen, "step": "type"}, sender)
    return STEPS[state["step"]](dict(state), text, sender)


def recorded(state: dict | None, tracking_code: str, sensitive: bool) -> list[str]:
    """The replies once the case is recorded: its tracking code, how to follow it and,
    for a sensitive case, the national hotlines (services/intake/hotlines.yaml)."""
    language = _language(state)
    replies = [TEXTS[language]["recorded"].format(code=tracking_code)]
    if sensitive:
        lines = "; ".join(f"{h['number']} {h['name_' + language]}" for h in hotlines())
        replies.append(TEXTS[language]["hotlines"].format(lines=lines))
    return replies


def status_reply(language: str, tracking_code: str, status: str | None,
                 office_name: str | None, deadline: str | None) -> str:
    """STATUS in words; `status` None when no case has that code (or not the sender's)."""
    texts = TEXTS[_language({"lang": language})]
    if status is None:
        return texts["no_case"].format(code=tracking_code)
    english, khmer = STATUS_WORDS_OF.get(status, (status, status))
    parts = [texts["status"].format(code=tracking_code,
                                    status=khmer if language == "km" else english)]
    if office_name:
        parts.append(texts["office"].format(office=office_name))
    if deadline:
        parts.append(texts["deadline"].format(deadline=_day(deadline)))
    return " ".join(parts)


def added_reply(language: str, tracking_code: str) -> str:
    """The answer to a ("message", text) command once the message is on the case."""
    return TEXTS[_language({"lang": language})]["added"].format(code=tracking_code)


def refused_reply(language: str, errors: dict) -> str:
    """The words for a submission the app's validation refused (field errors)."""
    fields = ", ".join(sorted(_field_names(errors))) or "?"
    return TEXTS[_language({"lang": language})]["refused"].format(fields=fields)


# -- the steps ----------------------------------------------------------------------------
def _language_step(state: dict, text: str, sender: str) -> Turn:
    chosen = LANGUAGE_WORDS.get(" ".join(text.casefold().split()))
    if chosen is None:
        return Turn(state, [LANGUAGE_PROMPT], language=guess_language(text))
    return _ask({**state, "lang": chosen, "step": "type"}, sender)


def _type_step(state: dict, text: str, sender: str) -> Turn:
    number = _choice(text, len(CASE_TYPES))
    if number is None:
        return _ask(state, sender, hint=_choose(state, len(CASE_TYPES)))
    return _ask({**state, "type": CASE_TYPES[number - 1], "step": "category", "page": 0}, sender)


def _category_step(state: dict, text: str, sender: str) -> Turn:
    offered = _categories(state["type"])
    if places.digits(text) == "0":
        return _ask(_next_page(state, _category_labels(state)), sender)
    number = _choice(text, len(offered))
    if number is None:
        return _ask(state, sender, hint=_choose(state, len(offered)))
    state = {**state, "category": offered[number - 1].code, "step": "province", "page": 0}
    return _ask(state, sender)


def _place_step(state: dict, text: str, sender: str) -> Turn:
    level = state["step"]
    texts = TEXTS[state["lang"]]
    if places.digits(text) == "0":
        if state.get("offered"):
            return _ask({**state, "offered": None, "page": 0}, sender)
        return _ask(_next_page(state, _place_labels(state)), sender)
    found = places.find(text, level, _scope(state), state.get("offered"))
    if not found:
        if places.digits(text) is not None:
            return _ask(state, sender, hint=_choose(state, len(_place_codes(state))))
        return _ask(state, sender, hint=texts["not_found"])
    if len(found) > places.MAX_CHOICES:
        return _ask(state, sender, hint=texts["too_many"])
    if len(found) > 1:
        return _ask({**state, "offered": [u.code for u in found], "page": 0}, sender)
    place = found[0]
    state = {k: v for k, v in state.items() if k not in places.LEVELS}
    state.update(places.path(place), offered=None, page=0)
    deeper = {"province": "district", "district": "commune"}
    next_step = deeper.get(places.level_of(place.code))
    if next_step is None:
        next_step = "rating" if state["type"] == "evaluation" else "description"
        state["parts"] = []
    return _ask({**state, "step": next_step}, sender)


def _description_step(state: dict, text: str, sender: str) -> Turn:
    texts = TEXTS[state["lang"]]
    parts = list(state.get("parts", []))
    said = " ".join(text.casefold().split())
    optional = state["type"] == "evaluation"
    if said in DONE_WORDS or said == "1":
        if not parts and not optional:
            return Turn(state, [texts["empty"]], language=state["lang"])
        return _ask({**state, "step": "contact"}, sender)
    clean = _text(text)
    if not clean:
        return _ask(state, sender)
    room = DESCRIPTION_MAX - len("\n".join(parts)) - (1 if parts else 0)
    if len(clean) > room:
        return Turn(state, [texts["too_long"].format(n=max(room, 0))], language=state["lang"])
    return Turn({**state, "parts": [*parts, clean]}, [texts["received"]], language=state["lang"])


def _rating_step(state: dict, text: str, sender: str) -> Turn:
    number = _choice(text, 5)
    if number is None:
        return _ask(state, sender, hint=_choose(state, 5))
    return _ask({**state, "rating": number, "step": "comment", "parts": []}, sender)


def _contact_step(state: dict, text: str, sender: str) -> Turn:
    number = _choice(text, 2)
    if number is None:
        return _ask(state, sender, hint=_choose(state, 2))
    if number == 2:
        return _ask({**state, "contact": "anonymous", "step": "gender"}, sender)
    if _reachable(sender):
        return _ask({**state, "contact": "sender", "step": "gender"}, sender)
    return _ask({**state, "step": "phone"}, sender)


def _phone_step(state: dict, text: str, sender: str) -> Turn:
    if places.digits(text) == "0":
        return _ask({**state, "contact": "anonymous", "step": "gender"}, sender)
    phone = normalise_phone(text)
    if phone is None:
        return _ask(state, sender, hint=TEXTS[state["lang"]]["bad_phone"])
    return _ask({**state, "contact": "phone", "phone": phone, "step": "gender"}, sender)


def _gender_step(state: dict, text: str, sender: str) -> Turn:
    number = _choice(text, len(GENDER_CHOICES))
    if number is None:
        return _ask(state, sender, hint=_choose(state, len(GENDER_CHOICES)))
    return _ask({**state, "gender": GENDER_CHOICES[number - 1], "step": "confirm"}, sender)


def _confirm_step(state: dict, text: str, sender: str) -> Turn:
    number = _choice(text, 2)
    if number is None:
        return _ask(state, sender, hint=_choose(state, 2))
    if state.get("contact") == "sender" and not _reachable(sender):
        return _ask({**state, "step": "contact"}, sender)  # not the number it was
    if number == 2:
        fresh = {"v": VERSION, "id": secrets.token_hex(8), "lang": state["lang"], "step": "type"}
        return _ask(fresh, sender)
    return Turn(None, submit=submission(state, sender), language=state["lang"])


STEPS = {
    "language": _language_step, "type": _type_step, "category": _category_step,
    "province": _place_step, "district": _place_step, "commune": _place_step,
    "description": _description_step, "comment": _description_step, "rating": _rating_step,
    "contact": _contact_step, "phone": _phone_step, "gender": _gender_step,
    "confirm": _confirm_step,
}


def submission(state: dict, sender: str) -> dict:
    """The SubmitCase payload of a conversation that has reached its summary."""
    gender = state.get("gender", "undisclosed")
    if state.get("contact") == "sender":
        complainant = {"anonymous": False, "phone": normalise_phone(sender),
                       "consent_to_contact": True, "gender": gender}
    elif state.get("contact") == "phone":
        complainant = {"anonymous": False, "phone": state["phone"],
                       "consent_to_contact": True, "gender": gender}
    else:
        complainant = {"anonymous": True, "gender": gender}
    payload = {
        "type": state["type"],
        "category": state["category"],
        "location": {level: state[level] for level in places.LEVELS},
        "language": state["lang"],
        "complainant": complainant,
    }
    if state.get("parts"):
        payload["description"] = "\n".join(state["parts"])
    if state["type"] == "evaluation":
        payload["rating"] = state["rating"]
    return payload


# -- the questions ------------------------------------------------------------------------
def _ask(state: dict, sender: str, hint: str | None = None) -> Turn:
    """The current step's question, after a hint when the last answer did not fit."""
    if state["step"] == "language":
        prompt = f"{hint}\n{LANGUAGE_PROMPT}" if hint else LANGUAGE_PROMPT
        return Turn(state, [prompt], language=_language(state))
    language = state["lang"]
    texts = TEXTS[language]
    question = _question(state, sender, texts)
    replies = [f"{hint}\n{question}" if hint else question]
    return Turn(state, replies, language=language)


def _question(state: dict, sender: str, texts: dict) -> str:
    current = state["step"]
    if current == "type":
        return _numbered(texts["type"], [texts[t] for t in CASE_TYPES])
    if current == "category":
        return _paged(texts["category"], _category_labels(state), state, texts)
    if current in places.LEVELS:
        if state.get("offered"):
            labels = [places.label(places.unit(code), state["lang"], parents=True)
                      for code in state["offered"]]
            return _numbered(texts["which"], labels)
        above = {"district": "province", "commune": "district"}.get(current)
        head = texts[current].format(
            place=places.name(places.unit(state[above]), state["lang"]) if above else "")
        return _paged(head, _place_labels(state), state, texts)
    if current == "description":
        return texts[f"describe_{state['type']}"]
    if current in ("rating", "comment", "phone", "gender"):
        return texts[current]
    if current == "contact":
        return texts["contact_sender" if _reachable(sender) else "contact_other"]
    return _summary(state, sender, texts)


def _summary(state: dict, sender: str, texts: dict) -> str:
    language = state["lang"]
    category = categories()[state["category"]]
    where = ", ".join(places.name(places.unit(state[level]), language)
                      for level in reversed(places.LEVELS))
    lines = [texts["check"],
             texts["kind"].format(kind=texts[state["type"]], category=category.name_km
                                  if language == "km" else category.name_en),
             texts["place"].format(place=where)]
    if state["type"] == "evaluation":
        lines.append(texts["rated"].format(n=state["rating"]))
    if state.get("contact") == "sender":
        lines.append(texts["contact"].format(phone=normalise_phone(sender)))
    elif state.get("contact") == "phone":
        lines.append(texts["contact"].format(phone=state["phone"]))
    else:
        lines.append(texts["anonymous"])
    words = " ".join("\n".join(state.get("parts", [])).split())
    if words:
        lines.append(f'"{words[:EXCERPT]}…"' if len(words) > EXCERPT else f'"{words}"')
    lines.append(texts["confirm"])
    return "\n".join(lines)


def _numbered(head: str, labels: list[str], first: int = 1) -> str:
    return "\n".join([head, *(f"{first + i} {label}" for i, label in enumerate(labels))])


def _paged(head: str, labels: list[str], state: dict, texts: dict) -> str:
    """One part of a long list, numbered as in the whole list, "0 More" when it goes on."""
    bounds = _pages(labels, state["lang"])
    start, end = bounds[state.get("page", 0) % len(bounds)]
    text = _numbered(head, labels[start:end], first=start + 1)
    return f"{text}\n{texts['more']}" if len(bounds) > 1 else text


def _pages(labels: list[str], language: str) -> list[tuple[int, int]]:
    bounds, start, size = [], 0, 0
    for i, label in enumerate(labels):
        line = len(label) + len(str(i + 1)) + 2
        if i > start and size + line > PAGE[language]:
            bounds.append((start, i))
            start, size = i, 0
        size += line
    bounds.append((start, len(labels)))
    return bounds


def _next_page(state: dict, labels: list[str]) -> dict:
    return {**state, "page": (state.get("page", 0) + 1) % len(_pages(labels, state["lang"]))}


def _categories(case_type: str) -> list:
    return [c for c in categories().values() if case_type in c.case_types]


def _category_labels(state: dict) -> list[str]:
    return [c.name_km if state["lang"] == "km" else c.name_en for c in _categories(state["type"])]


def _scope(state: dict) -> str | None:
    return {"district": state.get("province"), "commune": state.get("district")}.get(state["step"])


def _place_codes(state: dict) -> list[str]:
    if state.get("offered"):
        return state["offered"]
    return [u.code for u in places.within(state["step"], _scope(state))]


def _place_labels(state: dict) -> list[str]:
    return [places.name(u, state["lang"]) for u in places.within(state["step"], _scope(state))]


# -- reading what was typed -----------------------------------------------------------------
def _choice(text: str, count: int) -> int | None:
    """The number typed, if it is one of 1..count."""
    number = places.digits(text)
    if number is None or len(number) > 3:
        return None
    return int(number) if 1 <= int(number) <= count else None


def _choose(state: dict, count: int) -> str:
    return TEXTS[state["lang"]]["choose"].format(n=count)


def _looks_like_status(rest: list[str]) -> bool:
    """STATUS alone, or with what may be a tracking code: not a sentence that happens to
    begin with the word (a description about someone's status)."""
    return len(rest) <= 2 and len("".join(rest)) <= 14


def _text(text: str) -> str:
    """A part of the description as the app's validation takes it: control characters
    (but line breaks and tabs) dropped."""
    return "".join(c for c in text if unicodedata.category(c) not in ("Cc", "Cs")
                   or c in "\t\n\r").strip()


def _reachable(sender: str) -> bool:
    """Whether the sender is a Cambodian phone number the office may call back."""
    return bool(sender) and normalise_phone(sender) is not None


def guess_language(text: str) -> str:
    """Before the citizen has chosen: Khmer letters mean Khmer, Latin ones English."""
    return "km" if places.is_khmer(text) or not text else "en"


def _language(state: dict | None) -> str:
    language = (state or {}).get("lang")
    return language if language in TEXTS else "km"


def _day(deadline: str) -> str:
    try:
        return datetime.fromisoformat(deadline).date().isoformat()
    except ValueError:
        return deadline


def _field_names(errors: dict, prefix: str = "") -> list[str]:
    names = []
    for key, value in errors.items():
        name = f"{prefix}{key}"
        names.extend(_field_names(value, f"{name}.") if isinstance(value, dict) else [name])
    return names
