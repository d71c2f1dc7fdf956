from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from cryptography.exceptions import InvalidTag
from eventsourcing.application import Application

from services.intake import attachments
from services.intake.domain import AttachmentLimits, NotAllowed, TooManyFiles
from services.intake.tests.test_domain import submitted_case

KEY = b"k" * 32
LIMITS = AttachmentLimits(per_case=3, bytes_per_case=1000, per_day=2)


def add(case, size=100, attachment_id=None, status="routed", now=None, limits=LIMITS):
    return case.add_attachment(attachment_id or str(uuid4()), "photo", "image/jpeg", size,
                               "0" * 64, ["GPS position removed"], "citizen", None, status,
                               "commune-120101", limits, now)


def test_parts_open_only_in_their_place_and_whole():
    attachment_id, other = uuid4(), uuid4()
    data = bytes(range(256)) * 2100  # a little over two parts
    parts = attachments.seal_parts(KEY, attachment_id, attachments.FILE, data)
    assert len(parts) == 3
    opened = b"".join(attachments.open_part(KEY, attachment_id, 0, n, 3, p)
                      for n, p in enumerate(parts))
    assert opened == data
    with pytest.raises(InvalidTag):  # swapped
        attachments.open_part(KEY, attachment_id, 0, 0, 3, parts[1])
    with pytest.raises(InvalidTag):  # of another file
        attachments.open_part(KEY, other, 0, 0, 3, parts[0])
    with pytest.raises(InvalidTag):  # the thumbnail's place
        attachments.open_part(KEY, attachment_id, 1, 0, 3, parts[0])
    with pytest.raises(InvalidTag):  # cut short: the second part is not the last
        attachments.open_part(KEY, attachment_id, 0, 1, 2, parts[1])
    assert attachments.seal_parts(KEY, attachment_id, 0, b"") and \
        attachments.open_part(KEY, attachment_id, 0, 0, 1,
                              attachments.seal_parts(KEY, attachment_id, 0, b"")[0]) == b""


def test_a_file_is_added_once_and_replays():
    app = Application(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    case = submitted_case()
    attachment_id = str(uuid4())
    assert add(case, attachment_id=attachment_id) is True
    assert add(case, attachment_id=attachment_id) is False
    app.save(case)
    copy = app.repository.get(case.id)
    assert [a["attachment_id"] for a in copy.attachments] == [attachment_id]
    assert copy.attachments[0]["at"] is not None
    event = [e for e in app.events.get(case.id)][-1]
    assert type(event).__name__ == "AttachmentAdded" and event.size == 100
    # an anonymous case's files are personal data: erasure has something to erase
    assert copy.personal_data == "kept"


def test_a_case_from_before_files_loads_without_any():
    app = Application(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    case = submitted_case()
    case.send_message("hello", "routed", None, None)
    app.save(case)
    copy = app.repository.get(case.id)
    assert copy.attachments == [] and copy.personal_data == "none"


def test_limits_per_case_bytes_and_day():
    now = datetime.now(UTC)
    case = submitted_case()
    with pytest.raises(TooManyFiles, match="1000 bytes") as full:
        add(case, size=1001)
    assert full.value.retry_after is None
    add(case, now=now)
    add(case, now=now)
    with pytest.raises(TooManyFiles, match="2 files in 24 hours") as today:
        add(case, now=now)
    assert 0 < today.value.retry_after <= timedelta(days=1).total_seconds() + 1
    # the events' instants stand for "now" in the rule; a later day takes one more
    add(case, now=now + timedelta(days=2))
    with pytest.raises(TooManyFiles, match="at most 3 files") as count:
        add(case, now=now + timedelta(days=3))
    assert count.value.retry_after is None


def test_a_closed_withdrawn_or_erased_case_takes_no_file():
    case = submitted_case()
    with pytest.raises(NotAllowed, match="closed"):
        add(case, status="closed")
    case.withdraw(None, "routed", None)
    with pytest.raises(NotAllowed, match="withdrawn"):
        add(case)
    erased = submitted_case()
    add(erased)
    assert erased.erase_personal_data("operator", None) is True
    with pytest.raises(NotAllowed, match="erased"):
        add(erased)


def test_an_open311_media_url_is_kept_as_a_reference_and_replays():
    app = Application(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    case = submitted_case()
    case.refer_to_media("https://photos.example.org/tap.jpg")
    app.save(case)
    assert app.repository.get(case.id).media_references == ["https://photos.example.org/tap.jpg"]
