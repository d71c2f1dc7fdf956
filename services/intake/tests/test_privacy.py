import base64
from uuid import uuid4

import pytest

from services.intake import privacy
from shared.limits import RateLimit, retry_after
from shared.settings import SettingsError, reload


def test_a_sealed_contact_opens_only_with_its_own_key_and_case():
    case_id, other_case = uuid4(), uuid4()
    key = b"k" * 32
    sealed = privacy.seal_contact(key, case_id, {"phone": "+85512345678", "name": "សុខ"})
    assert "85512345678" not in sealed and "85512345678" not in base64.b64decode(sealed).decode(
        "latin-1")
    assert privacy.open_contact(key, case_id, sealed) == {"phone": "+85512345678", "name": "សុខ"}
    assert privacy.open_contact(b"x" * 32, case_id, sealed) is None
    assert privacy.open_contact(key, other_case, sealed) is None


def test_the_master_key_must_be_32_bytes(monkeypatch):
    for bad in (base64.b64encode(b"short").decode(), "not base64 at all!"):
        monkeypatch.setenv("OURVOICE_MASTER_KEY", bad)
        with pytest.raises(SettingsError, match="OURVOICE_MASTER_KEY must be the base64 "
                                                "of 32 bytes") as refused:
            reload()
        assert bad not in str(refused.value)  # a secret is never shown


def test_the_submission_limit_refills_over_a_minute():
    now = [0.0]
    limit = RateLimit(3, clock=lambda: now[0])
    assert [limit.admit("10.0.0.1") for _ in range(3)] == [None, None, None]
    wait = limit.admit("10.0.0.1")
    assert wait == pytest.approx(20.0) and retry_after(wait) == "20"
    assert limit.admit("10.0.0.2") is None  # each client has its own bucket
    now[0] = 20.0
    assert limit.admit("10.0.0.1") is None
    assert limit.admit("10.0.0.1") is not None
    assert RateLimit(0).admit("10.0.0.1") is None  # 0 turns the limit off


def test_the_limit_comes_from_the_environment(monkeypatch):
    from services.intake.limits import configured_per_minute

    monkeypatch.delenv("OURVOICE_SUBMISSIONS_PER_MINUTE", raising=False)
    reload()
    assert configured_per_minute() == 600
    monkeypatch.setenv("OURVOICE_SUBMISSIONS_PER_MINUTE", "12")
    reload()
    assert configured_per_minute() == 12
    for bad in ("many", "-1"):
        monkeypatch.setenv("OURVOICE_SUBMISSIONS_PER_MINUTE", bad)
        with pytest.raises(ValueError, match="OURVOICE_SUBMISSIONS_PER_MINUTE"):
            reload()
