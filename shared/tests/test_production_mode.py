"""Production mode: a service will not run on a secret anyone could read in the source or
guess, nor on a mode it does not know."""

import base64
import os
import secrets
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from shared.config import DEFAULTS, SERVICES, check_production, signing_secrets, weakness
from shared.settings import reload

OWN_KEYS = {"OURVOICE_SECRET": "2026a:" + base64.b64encode(secrets.token_bytes(32)).decode(),
            "OURVOICE_MASTER_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
            "OURVOICE_CHECKPOINT_KEY": base64.b64encode(secrets.token_bytes(32)).decode()}


@pytest.fixture
def production(monkeypatch):
    monkeypatch.setenv("OURVOICE_ENV", "production")
    for key, value in OWN_KEYS.items():
        monkeypatch.setenv(key, value)
    for service in SERVICES:
        monkeypatch.setenv(f"{service.upper()}_BROKER_PASSWORD", secrets.token_hex(24))
    return monkeypatch


@pytest.mark.parametrize("service", SERVICES)
def test_production_refuses_a_service_on_the_development_broker_password(production, service):
    """Anyone who read the source could otherwise speak on the bus as that service."""
    production.delenv(f"{service.upper()}_BROKER_PASSWORD")
    with pytest.raises(SystemExit) as refused:
        check_production()
    assert f"{service.upper()}_BROKER_PASSWORD" in str(refused.value)


@pytest.mark.parametrize("name", sorted(OWN_KEYS))
@pytest.mark.parametrize("weak", ["unset", "empty", "default"])
def test_production_refuses_a_missing_or_default_secret(production, name, weak):
    if weak == "unset":
        production.delenv(name)
    else:
        production.setenv(name, "" if weak == "empty" else DEFAULTS[name])
    with pytest.raises(SystemExit) as refused:
        check_production()
    assert name in str(refused.value)
    assert all(other not in str(refused.value) for other in OWN_KEYS if other != name)


@pytest.mark.parametrize("secret", [
    "x",  # the example
    "2026a:x",
    "x" * 64,  # long, but one character
    "ab" * 32,  # hex of one byte repeated
    base64.b64encode(b"k" * 32).decode(),
    base64.b64encode(b"this deployment's own signing key!").decode(),  # a phrase, encoded
    secrets.token_hex(16),  # random, but 16 bytes
    "local-development-secret-change-me",  # the development value as it was written before
    "deploy-test-token-signing-key",
])
def test_production_refuses_a_short_or_guessable_secret(production, secret):
    production.setenv("OURVOICE_SECRET", secret)
    with pytest.raises(SystemExit) as refused:
        check_production()
    message = str(refused.value)
    assert "OURVOICE_SECRET" in message and "openssl rand -base64 32" in message
    assert len(secret) < 8 or secret not in message  # a secret is never shown


def test_production_refuses_an_older_secret_that_is_weak(production):
    production.setenv("OURVOICE_SECRET", OWN_KEYS["OURVOICE_SECRET"].replace("2026a", "2026b")
                      + ",2026a:x:2027-01-31")
    with pytest.raises(SystemExit) as refused:
        check_production()
    assert "'2026a'" in str(refused.value) and "'2026b'" not in str(refused.value)


@pytest.mark.parametrize("mode", ["prod", "Production", " production", "production ",
                                  "PRODUCTION", "dev", "staging", ""])
def test_an_unknown_mode_refuses_to_start(production, mode):
    production.setenv("OURVOICE_ENV", mode)
    with pytest.raises(SystemExit) as refused:
        check_production()
    message = str(refused.value)
    assert "OURVOICE_ENV" in message and "'development' or 'production'" in message


def test_production_runs_with_keys_of_its_own(production):
    check_production()


@pytest.mark.parametrize("made", [secrets.token_hex(32), secrets.token_urlsafe(32),
                                  base64.b64encode(secrets.token_bytes(48)).decode()])
def test_what_openssl_or_python_makes_is_strong(made):
    assert weakness(made) is None


def test_development_keeps_the_default(monkeypatch):
    monkeypatch.delenv("OURVOICE_ENV", raising=False)
    monkeypatch.delenv("OURVOICE_SECRET", raising=False)
    check_production()
    monkeypatch.setenv("OURVOICE_ENV", "development")
    monkeypatch.setenv("OURVOICE_SECRET", "x")  # a lone secret, as written before ids
    check_production()
    assert [s.id for s in signing_secrets()] == ["0"]


def test_the_secret_list_names_who_signs_and_until_when_the_others_verify(monkeypatch):
    monkeypatch.setenv("OURVOICE_SECRET", "2026b:new, 2026a:old:2027-01-31,2025:older:"
                                          "2026-12-01T12:00:00+07:00")
    reload()
    new, old, older = signing_secrets()
    assert (new.id, new.key, new.until) == ("2026b", b"new", None)
    assert (old.id, old.key) == ("2026a", b"old")
    assert old.until == datetime(2027, 1, 31, tzinfo=UTC)
    assert older.until == datetime(2026, 12, 1, 5, 0, tzinfo=UTC)
    assert old.verifies_at(datetime(2027, 1, 30, 23, 59, tzinfo=UTC))
    assert not old.verifies_at(datetime(2027, 1, 31, tzinfo=UTC))


@pytest.mark.parametrize("value, why", [
    ("a:one,a:two", "twice"),
    ("a:one:2027-01-31", "no end date"),
    ("a:one,b:two:next-week", "ISO 8601"),
    ("bad id:one", "ID:SECRET"),
    ("a:", "no secret"),
])
def test_a_malformed_secret_list_stops_any_mode(monkeypatch, value, why):
    monkeypatch.delenv("OURVOICE_ENV", raising=False)
    monkeypatch.setenv("OURVOICE_SECRET", value)
    with pytest.raises(SystemExit) as refused:
        check_production()
    assert why in str(refused.value) and "OURVOICE_SECRET" in str(refused.value)


def run(module: list[str], **changes) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in (*OWN_KEYS, "OURVOICE_ENV")}
    env.update({k: v for k, v in changes.items() if v is not None})
    # Without the check the service would start and run until the timeout.
    return subprocess.run([sys.executable, "-m", *module], env=env, capture_output=True,
                          text=True, timeout=60)


def test_a_service_in_production_without_its_secret_exits_before_listening():
    finished = run(["services.intake"], OURVOICE_ENV="production")
    assert finished.returncode == 1
    assert "OURVOICE_SECRET" in finished.stderr and "OURVOICE_MASTER_KEY" in finished.stderr


@pytest.mark.parametrize("module", [["services.routing"], ["ourvoice", "projections", "status"]])
def test_services_and_the_cli_refuse_prod_and_a_weak_secret(module):
    misspelt = run(module, OURVOICE_ENV="prod", **OWN_KEYS)
    assert misspelt.returncode == 1 and "OURVOICE_ENV='prod'" in misspelt.stderr
    weak = run(module, OURVOICE_ENV="production",
               **{**OWN_KEYS, "OURVOICE_SECRET": "x"})
    assert weak.returncode == 1 and "OURVOICE_SECRET" in weak.stderr


@pytest.mark.parametrize("retention", ["90", "P", "PT", "90 days", "P1.5D"])
def test_a_malformed_token_retention_stops_any_mode(monkeypatch, retention):
    monkeypatch.delenv("OURVOICE_ENV", raising=False)
    monkeypatch.setenv("OURVOICE_CITIZEN_TOKEN_RETENTION", retention)
    with pytest.raises(SystemExit) as refused:
        check_production()
    assert "OURVOICE_CITIZEN_TOKEN_RETENTION" in str(refused.value)
