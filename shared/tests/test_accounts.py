"""The parts of staff accounts that need no database: passwords, second factors, the
sealing of their secrets and the settings."""

from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from cryptography.exceptions import InvalidTag

from shared import accounts
from shared.config import StaffLogins, check_production
from shared.settings import reload

NOW = datetime(2026, 12, 1, 9, 0, 10, tzinfo=UTC)


def test_a_password_hash_is_argon2id_and_checks_only_its_password():
    hashed = accounts.hash_password("a long enough password")
    assert hashed.startswith("$argon2id$") and "a long enough password" not in hashed
    assert accounts.password_matches(hashed, "a long enough password")
    assert not accounts.password_matches(hashed, "a long enough passworD")
    assert not accounts.password_matches("not a hash", "a long enough password")


def test_a_password_needs_the_minimum_length(monkeypatch):
    assert accounts.password_problem("123456789") == "a password needs at least 10 characters"
    assert accounts.password_problem("1234567890") is None
    monkeypatch.setenv("OURVOICE_PASSWORD_MIN_LENGTH", "14")
    reload()
    assert accounts.password_problem("1234567890") == "a password needs at least 14 characters"


def test_a_code_of_this_step_or_a_neighbour_is_taken_with_its_step():
    secret = pyotp.random_base32()
    totp = pyotp.TOTP(secret)
    assert accounts.totp_step(secret, totp.at(NOW), NOW) == totp.timecode(NOW)
    before = NOW - timedelta(seconds=30)
    assert accounts.totp_step(secret, totp.at(before), NOW) == totp.timecode(before)
    code = totp.at(NOW)
    assert accounts.totp_step(secret, f"{code[:3]} {code[3:]}", NOW) == totp.timecode(NOW)
    assert accounts.totp_step(secret, totp.at(NOW - timedelta(minutes=5)), NOW) is None
    assert accounts.totp_step(secret, "", NOW) is None
    assert accounts.totp_step(pyotp.random_base32(), code, NOW) is None


def test_a_sealed_secret_opens_only_for_its_own_account():
    sealed = accounts._seal("sok.dara", "JBSWY3DPEHPK3PXP")
    assert "JBSWY3DPEHPK3PXP" not in sealed
    assert accounts._open("sok.dara", sealed) == "JBSWY3DPEHPK3PXP"
    with pytest.raises(InvalidTag):
        accounts._open("keo.sophal", sealed)


def test_the_otpauth_uri_names_the_account_and_the_issuer():
    secret = pyotp.random_base32()
    assert accounts.otpauth_uri("sok.dara", secret) == \
        f"otpauth://totp/Our%20Voice:sok.dara?secret={secret}&issuer=Our%20Voice"


def test_the_login_settings_have_defaults_and_refuse_nonsense(monkeypatch):
    settings = StaffLogins.from_env()
    assert (settings.session_idle, settings.session_limit, settings.failure_window) == (
        timedelta(minutes=30), timedelta(hours=12), timedelta(minutes=15))
    assert (settings.failures_per_username, settings.failures_per_address,
            settings.password_min_length) == (5, 20, 10)
    for name, value in (("OURVOICE_SESSION_IDLE", "30 minutes"),
                        ("OURVOICE_LOGIN_FAILURES_PER_USERNAME", "0"),
                        ("OURVOICE_PASSWORD_MIN_LENGTH", "4")):
        monkeypatch.setenv(name, value)
        with pytest.raises(SystemExit, match=name):
            check_production()  # every program's start
        monkeypatch.delenv(name)
