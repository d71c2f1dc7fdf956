"""The emails notifications sends, as a real SMTP server receives them and the standard
library's parser (the newer email API, as mail clients read) reads them back: every
message in both languages, a Subject long enough to fold, addresses in other scripts."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.notifications.channels import Email, SendFailed, SmtpSettings, message_id
from services.notifications.messages import LANGUAGES, Templates
from tests.receivers import Mailbox
from tests.system import wait_until

MESSAGES = sorted(path.stem for path in
                  (Path(__file__).resolve().parents[1] / "services" / "notifications"
                   / "templates" / "en").glob("*.yaml"))
CODE = "PKG3J-JUT6T"
DETAILS = {"office_id": "commune-120101", "from_office_id": "district-1201",
           "question": "សូមផ្ញើរូបថតនៃឯកសារ។", "resolution": "The road was repaired.",
           "reason": "wrong_office", "due_at": "2026-12-09T10:00:00+00:00",
           "deadline": "resolve", "outcome": "resolved"}


@pytest.fixture
def mailbox():
    box = Mailbox()
    box.start()
    yield box
    box.stop()


@pytest.fixture
def sender(mailbox):
    channel = Email(SmtpSettings(port=mailbox.port, helo="test.local",
                                 sender="សំឡេងយើង <no-reply@ourvoice.local>"))
    yield channel
    channel.close()


def received(mailbox: Mailbox, count: int):
    wait_until(lambda: len(mailbox.mails) >= count, timeout=10, what=f"{count} mails")
    return mailbox.mails[count - 1]


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_message_reads_back_as_written_with_its_tracking_code_readable_raw(
        mailbox, sender, language):
    for n, message in enumerate(MESSAGES, start=1):
        text = Templates().render(message, language, DETAILS, CODE, "commune-120101", "c1")
        sender.send("citizen@example.org", text.subject, text.email, f"delivery-{n}")
        mail = received(mailbox, n)
        assert mail.message["Subject"] == " ".join(text.subject.split()), message
        head = mail.raw.split(b"\r\n\r\n", 1)[0]
        assert CODE.encode() in head, f"{message}: the tracking code is encoded in the Subject"
        assert mail.message.get_content_charset() == "utf-8"
        assert mail.message.get_content().replace("\r\n", "\n").rstrip("\n") == \
            text.email.rstrip("\n"), message
        assert mail.message["Message-ID"] == message_id(f"delivery-{n}")
        assert mail.message["From"].addresses[0].display_name == "សំឡេងយើង"
        assert mail.recipients == ["citizen@example.org"]


def test_a_long_subject_in_khmer_folds_and_reads_back_whole(mailbox, sender):
    subject = f"សំឡេងយើង៖ ករណីថ្មី {CODE} សម្រាប់ " + "សាលាឃុំ/សង្កាត់ ទន្លេបាសាក់ " * 6
    sender.send("office@example.org", subject, "ករណីរបស់អ្នកត្រូវបានទទួល។ " * 20, "d-long")
    mail = received(mailbox, 1)
    head = mail.raw.split(b"\r\n\r\n", 1)[0]
    assert max(len(line) for line in head.split(b"\r\n")) <= 78
    assert mail.message["Subject"] == subject.strip()
    assert mail.message.get_content().rstrip("\n") == ("ករណីរបស់អ្នកត្រូវបានទទួល។ " * 20)


def test_a_domain_in_another_script_goes_in_its_ascii_form_and_a_mailbox_name_is_refused(
        mailbox, sender):
    sender.send("sok@ឃុំ.example", "Our Voice", "hello", "d-idn")
    assert received(mailbox, 1).recipients == ["sok@xn--l2e6i7a.example"]
    with pytest.raises(SendFailed, match="not in ASCII"):
        sender.send("សុខ@example.org", "Our Voice", "hello", "d-refused")
    assert len(mailbox.mails) == 1
