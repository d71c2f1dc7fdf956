"""The guided conversation, message by message: complete cases in Khmer and English, the
place found by a misspelt or shared name, answers that do not fit, and the commands."""

from __future__ import annotations

import json

import pytest

from services.intake import dialogue
from services.intake.dialogue import Turn, step
from services.intake.schemas import DESCRIPTION_MAX, SubmitCase
from shared.categories import categories

PHONE = "+85512345678"


def talk(messages: list[str], sender: str = PHONE, state: dict | None = None,
         linked: bool = False) -> list[Turn]:
    """Each message in turn, the state kept as the adapter keeps it: through JSON."""
    turns = []
    for text in messages:
        turn = step(state, text, sender, linked=linked)
        if turn.state is not None:
            assert turn.state["v"] == 1
            assert json.loads(json.dumps(turn.state)) == turn.state
        assert all(isinstance(reply, str) and reply for reply in turn.replies)
        turns.append(turn)
        state = turn.state
    return turns


def position(code: str, case_type: str) -> str:
    """The number a category has in the list offered for a case type."""
    offered = [c for c in categories().values() if case_type in c.case_types]
    return str([c.code for c in offered].index(code) + 1)


def test_a_complaint_in_khmer_step_by_step():
    turns = talk([
        "សួស្តី",                     # any first message: the language is asked
        "1",                          # ខ្មែរ
        "1",                          # ពាក្យបណ្ដឹង
        position("water-supply", "complaint"),
        "ភ្នំពេញ",
        "ចំការមន",
        "ទន្លេបាសាក់",
        "គ្មានទឹកស្អាតអស់មួយសប្តាហ៍",
        "សូមជួយដោះស្រាយ",
        "រួចរាល់",
        "1",                          # contactable at this number
        "1",                          # female
        "1",                          # send
    ])
    assert "ជ្រើសភាសា" in turns[0].replies[0]
    assert "ពាក្យបណ្ដឹង" in turns[1].replies[0]
    assert "ស្រុក/ខណ្ឌ" in turns[4].replies[0] and "ចំការមន" in turns[4].replies[0]
    assert "ឃុំ/សង្កាត់" in turns[5].replies[0]
    assert "សូមពិនិត្យ" in turns[11].replies[0] and "ទន្លេបាសាក់" in turns[11].replies[0]
    last = turns[-1]
    assert last.state is None and last.language == "km"
    assert last.submit == {
        "type": "complaint", "category": "water-supply",
        "location": {"province": "12", "district": "1201", "commune": "120101"},
        "language": "km",
        "description": "គ្មានទឹកស្អាតអស់មួយសប្តាហ៍\nសូមជួយដោះស្រាយ",
        "complainant": {"anonymous": False, "phone": PHONE, "consent_to_contact": True,
                        "gender": "female"},
    }
    loaded = SubmitCase().load(last.submit)
    assert loaded["complainant"]["phone"] == PHONE and loaded["language"] == "km"


def test_a_complaint_in_english_step_by_step():
    turns = talk([
        "English", "1", position("local-roads", "complaint"),
        "Kompong Cham",               # misspelt: Kampong Cham
        "1",                          # the first district offered
        "1",                          # its first commune
        "The road to the market is flooded.", "DONE",
        "2",                          # anonymous
        "4",                          # prefers not to say
        "1",
    ])
    assert turns[0].replies[0].startswith("What would you like to send?")
    assert "Which district of Kampong Cham?" in turns[3].replies[0]
    assert "Anonymous" in turns[9].replies[0]
    payload = turns[-1].submit
    assert payload["location"]["province"] == "03" and payload["language"] == "en"
    assert payload["complainant"] == {"anonymous": True, "gender": "undisclosed"}
    assert SubmitCase().load(payload)["description"] == "The road to the market is flooded."


def test_an_evaluation_with_a_rating_and_no_comment():
    turns = talk(["2", "4", position("health-centres", "evaluation"), "Siem Reap",
                  "Siem Reab", "1", "6", "4", "1", "2", "2", "1"])
    assert "from 1 (very poor) to 5 (very good)" in turns[5].replies[0]
    assert "Please reply with a number from 1 to 5." in turns[6].replies[0]
    assert "Any comment?" in turns[7].replies[0]
    assert "Rating: 4/5" in turns[10].replies[0]
    payload = turns[-1].submit
    assert payload["rating"] == 4 and "description" not in payload
    assert payload["location"]["district"] == "1710"
    assert SubmitCase().load(payload)["rating"] == 4


def test_an_evaluation_with_a_comment():
    state = talk(["2", "4", position("schools", "evaluation"), "120101", "5"])[-1].state
    turns = talk(["Friendly teachers", "1", "2", "3", "1"], state=state)
    assert turns[0].replies == ["Received. Send more, or 1 (DONE) to finish."]
    payload = turns[-1].submit
    assert payload["description"] == "Friendly teachers" and payload["rating"] == 5
    assert payload["complainant"]["gender"] == "other"
    SubmitCase().load(payload)


def test_a_misspelt_province_is_found():
    turn = talk(["2", "1", "1", "Batambang"])[-1]
    assert turn.state["province"] == "02" and turn.state["step"] == "district"


def test_an_ambiguous_name_is_resolved_through_choices():
    turns = talk(["2", "1", "1", "Samraong", "2"])
    choices = turns[3].replies[0]
    assert choices.startswith("Which one do you mean?")
    assert "1 Samraong (Takeo)" in choices and "2 Samraong (Otdar Meanchey)" in choices
    assert turns[4].state["district"] == turns[3].state["offered"][1]
    assert turns[4].state["province"] == "22" and turns[4].state["step"] == "commune"


def test_a_wrong_province_is_left_by_naming_the_place():
    turn = talk(["2", "1", "1", "Battambang", "Chamkar Mon"])[-1]
    assert (turn.state["province"], turn.state["district"]) == ("12", "1201")
    assert turn.replies[0].startswith("Which commune of Chamkar Mon?")


def test_a_geocode_typed_skips_what_it_tells():
    turn = talk(["2", "1", "1", "120101"])[-1]
    assert turn.state["step"] == "description"
    assert (turn.state["province"], turn.state["district"], turn.state["commune"]) == \
        ("12", "1201", "120101")


def test_long_lists_come_in_parts():
    turns = talk(["2", "1", "0", "0", "0", "0"])
    parts = [turn.replies[0] for turn in turns[1:]]
    assert "1 Civil registration" in parts[0] and parts[0].endswith("0 More")
    assert "1 Civil registration" not in parts[1]
    again = parts.index(parts[0], 1)  # after the last part, the first again
    listed = "".join(parts[:again])
    assert all(f"\n{n} " in listed for n in range(1, len(categories()) + 1))
    province = talk(["2", "1", "1", "0"])[-1].replies[0]
    assert "25 Tboung Khmum" in province and "1 Banteay Meanchey" not in province


@pytest.mark.parametrize("answers, hint", [
    (["2", "7"], "Please reply with a number from 1 to 4."),
    (["2", "one"], "Please reply with a number from 1 to 4."),
    (["2", "1", "99"], "Please reply with a number from 1 to"),
    (["2", "1", "1", "Atlantis"], "No place by that name."),
    (["2", "1", "1", "40"], "Please reply with a number from 1 to 25."),
    (["2", "1", "1", "12", "1", "1", "DONE"], "Please describe it first"),
    (["2", "1", "1", "120101", "text", "DONE", "3"], "Please reply with a number from 1 to 2."),
    (["2", "1", "1", "120101", "text", "DONE", "2", "x"], "from 1 to 4"),
])
def test_an_answer_that_does_not_fit_is_asked_again(answers, hint):
    turns = talk(answers)
    before, after = turns[-2], turns[-1]
    assert hint in after.replies[0]
    assert after.state["step"] == before.state["step"] and after.submit is None


def test_a_language_not_offered_is_asked_again():
    turns = talk(["hi", "French"])
    assert turns[1].state["step"] == "language" and "1 ខ្មែរ" in turns[1].replies[0]


def test_a_telegram_citizen_gives_a_phone_or_stays_anonymous():
    state = talk(["2", "1", "1", "120101", "text", "DONE"], sender="")[-1].state
    turns = talk(["1", "12345", "012 345 679", "1", "1"], sender="", state=state)
    assert turns[0].state["step"] == "phone"
    assert "not a Cambodian phone number" in turns[1].replies[0]
    assert turns[-1].submit["complainant"] == {
        "anonymous": False, "phone": "+85512345679", "consent_to_contact": True,
        "gender": "female"}
    SubmitCase().load(turns[-1].submit)
    anonymous = talk(["1", "0", "4", "1"], sender="", state=state)[-1].submit
    assert anonymous["complainant"] == {"anonymous": True, "gender": "undisclosed"}


def test_a_foreign_sender_number_is_not_taken_as_the_contact():
    state = talk(["2", "1", "1", "120101", "text", "DONE"], sender="+33612345678")[-1].state
    assert talk(["1"], sender="+33612345678", state=state)[-1].state["step"] == "phone"


def test_start_again_at_the_summary():
    state = talk(["2", "1", "1", "120101", "text", "DONE", "2", "4"])[-1].state
    turn = talk(["2"], state=state)[-1]
    assert turn.state["step"] == "type" and turn.state["lang"] == "en"
    assert "category" not in turn.state and turn.submit is None


def test_the_description_is_held_to_the_length_the_app_takes():
    state = talk(["2", "1", "1", "120101", "a" * (DESCRIPTION_MAX - 10)])[-1].state
    turn = talk(["b" * 20], state=state)[-1]
    assert "Too long: 9 more characters at most" in turn.replies[0]
    assert turn.state["parts"] == state["parts"]
    turns = talk(["b" * 9, "DONE", "2", "4", "1"], state=state)
    assert len(SubmitCase().load(turns[-1].submit)["description"]) == DESCRIPTION_MAX


def test_control_characters_are_left_out_of_the_description():
    state = talk(["2", "1", "1", "120101"])[-1].state
    turns = talk(["line\x00one\x1b", "DONE", "2", "4", "1"], state=state)
    assert SubmitCase().load(turns[-1].submit)["description"] == "lineone"


# -- commands at any step ------------------------------------------------------------------
CONVERSATION = ["2", "1", "1", "Battambang", "1", "1", "text", "DONE", "1", "1"]


@pytest.mark.parametrize("at", range(len(CONVERSATION) + 1))
@pytest.mark.parametrize("word", ["STOP", "cancel", "ឈប់", "  Stop "])
def test_stop_at_any_step_ends_the_conversation(at, word):
    state = talk(CONVERSATION[:at])[-1].state if at else None
    turn = talk([word], state=state)[-1]
    assert turn.state is None and turn.submit is None and turn.command is None
    assert "Stopped" in turn.replies[0] or "បានបញ្ឈប់" in turn.replies[0]


@pytest.mark.parametrize("at", range(1, len(CONVERSATION) + 1))
def test_status_and_help_at_any_step_keep_the_conversation(at):
    before = talk(CONVERSATION[:at])[-1]
    status = talk(["status pkg3j jut6t"], state=before.state)[-1]
    assert status.command == ("status", "PKG3J-JUT6T") and status.state == before.state
    assert status.replies == []
    helped = talk(["HELP"], state=before.state)[-1]
    assert helped.state == before.state
    # The help, then the question the citizen is at.
    question = before.replies[0]
    if before.state["step"] == "description" and before.state["parts"]:
        question = dialogue.TEXTS["en"]["describe_complaint"]
    assert helped.replies[0] == f"{dialogue.TEXTS['en']['help']}\n{question}"


def test_status_outside_a_conversation_and_its_hints():
    turn = talk(["ស្ថានភាព PKG3J-JUT6T"])[-1]
    assert turn.command == ("status", "PKG3J-JUT6T") and turn.state is None
    assert turn.language == "km"
    assert talk(["STATUS PKG3J-JUT6T"])[-1].language == "en"
    hint = talk(["STATUS"])[-1]
    assert hint.command is None and "STATUS ABCDE-23456" in hint.replies[0]
    assert talk(["status 12"])[-1].command is None
    # A sentence that begins with the word is an answer, not the command.
    state = talk(["2", "1", "1", "120101"])[-1].state
    turn = talk(["Status of my land title is unknown since March"], state=state)[-1]
    assert turn.command is None and turn.state["parts"] == [
        "Status of my land title is unknown since March"]


def test_help_outside_a_conversation():
    turn = talk(["help"])[-1]
    assert turn.state is None and "STATUS" in turn.replies[0] and "Send any message" in \
        turn.replies[0]
    khmer = talk(["ជំនួយ"])[-1]
    assert khmer.language == "km" and khmer.replies[0].startswith("សំឡេងយើង")


def test_a_linked_sender_writes_to_their_case_until_new():
    turn = talk(["I have the receipt now"], linked=True)[-1]
    assert turn.command == ("message", "I have the receipt now") and turn.state is None
    started = talk(["NEW"], linked=True)[-1]
    assert started.state["step"] == "language" and started.command is None
    # Within a conversation, text is an answer, linked or not.
    state = talk(["2"])[-1].state
    assert talk(["1"], state=state, linked=True)[-1].state["step"] == "category"


def test_a_state_of_another_version_starts_afresh():
    turn = talk(["hello"], state={"v": 0, "step": "confirm"})[-1]
    assert turn.state["step"] == "language"


# -- the replies around the submission -------------------------------------------------------
def test_a_sensitive_case_is_answered_with_the_hotlines():
    code = position("gender-based-violence", "complaint")
    turns = talk(["1", "1", code, "120101", "រឿងរ៉ាវ", "រួចរាល់", "2", "1", "1"])
    payload = turns[-1].submit
    assert categories()[payload["category"]].sensitive
    SubmitCase().load(payload)
    for state in ({"lang": "km"}, {"lang": "en"}):
        replies = dialogue.recorded(state, "PKG3J-JUT6T", sensitive=True)
        assert "PKG3J-JUT6T" in replies[0]
        assert "1280" in replies[1] and "1288" in replies[1]
    assert "Child helpline" in dialogue.recorded({"lang": "en"}, "PKG3J-JUT6T", True)[1]
    plain = dialogue.recorded({"lang": "en"}, "PKG3J-JUT6T", sensitive=False)
    assert len(plain) == 1 and "1280" not in plain[0]


def test_the_hotlines_file():
    numbers = {h["number"]: h for h in dialogue.hotlines()}
    assert set(numbers) == {"1280", "1288"}
    assert all(h["name_km"] and h["name_en"] for h in numbers.values())


def test_status_in_words():
    reply = dialogue.status_reply("en", "PKG3J-JUT6T", "acknowledged", "Chamkar Mon district",
                                  "2026-12-10T09:00:00+00:00")
    assert reply == ("Case PKG3J-JUT6T: being handled by the office. Office: Chamkar Mon "
                     "district. Expected by 2026-12-10.")
    khmer = dialogue.status_reply("km", "PKG3J-JUT6T", "resolved", None, None)
    assert "បានដោះស្រាយ" in khmer
    assert "No case" in dialogue.status_reply("en", "PKG3J-JUT6T", None, None, None)


def test_refused_and_added_replies():
    reply = dialogue.refused_reply("en", {"location": {"commune": ["no commune"]},
                                          "description": ["too long"]})
    assert "description, location.commune" in reply
    assert "PKG3J-JUT6T" in dialogue.added_reply("km", "PKG3J-JUT6T")


def test_short_replies():
    """A question fits in two SMS (160 GSM characters each); a part of a long list in
    three."""
    turns = talk(["2", "1", "1", "Battambang", "1", "1", "text", "DONE", "1", "1"])
    for turn in turns:
        listed = "\n9 " in turn.replies[0] or "\n0 More" in turn.replies[0]
        assert len(turn.replies[0]) <= (480 if listed else 320), turn.replies[0]


ODD = ["", " ", "0", "00", "-1", "1.5", "១", "៥", "9" * 40, "\x00", "\u200b", "🙂", "a" * 5000,
       "STATUS", "status a b c", "DONE", "រួចរាល់", "NEW", "ខេត្ត", "province", "?", "\n\n"]


@pytest.mark.parametrize("at", range(len(CONVERSATION) + 1))
def test_no_answer_breaks_the_conversation(at):
    state = talk(CONVERSATION[:at])[-1].state if at else None
    for text in ODD:
        for sender in (PHONE, "", "not a number"):
            turn = talk([text], sender=sender, state=state)[-1]
            if turn.submit is not None:
                SubmitCase().load(turn.submit)


def test_an_unknown_step_starts_afresh():
    assert talk(["hello"], state={"v": 1, "step": "somewhere"})[-1].state["step"] == "language"
