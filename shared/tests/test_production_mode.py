"""Production mode: a service will not run on a secret anyone could read in the source."""

import os
import subprocess
import sys

import pytest

from shared.config import DEFAULTS, check_production

OWN_KEYS = {"OURVOICE_SECRET": "a-signing-key-of-this-deployment",
            "OURVOICE_MASTER_KEY": "dGhpcy1kZXBsb3ltZW50cy1vd24tbWFzdGVyLWtleSE=",
            "OURVOICE_CHECKPOINT_KEY": "dGhpcy1kZXBsb3ltZW50J3MtY2hlY2twb2ludC1rZXk="}


@pytest.mark.parametrize("name", sorted(OWN_KEYS))
@pytest.mark.parametrize("weak", ["unset", "empty", "default"])
def test_production_refuses_a_missing_or_default_secret(monkeypatch, name, weak):
    monkeypatch.setenv("OURVOICE_ENV", "production")
    for key, value in OWN_KEYS.items():
        monkeypatch.setenv(key, value)
    if weak == "unset":
        monkeypatch.delenv(name)
    else:
        monkeypatch.setenv(name, "" if weak == "empty" else DEFAULTS[name])
    with pytest.raises(SystemExit) as refused:
        check_production()
    assert name in str(refused.value)
    assert all(other not in str(refused.value) for other in OWN_KEYS if other != name)


def test_production_runs_with_keys_of_its_own(monkeypatch):
    monkeypatch.setenv("OURVOICE_ENV", "production")
    for key, value in OWN_KEYS.items():
        monkeypatch.setenv(key, value)
    check_production()


def test_development_keeps_the_default(monkeypatch):
    monkeypatch.delenv("OURVOICE_ENV", raising=False)
    monkeypatch.delenv("OURVOICE_SECRET", raising=False)
    check_production()


def test_a_service_in_production_without_its_secret_exits_before_listening():
    env = {k: v for k, v in os.environ.items() if k not in OWN_KEYS}
    env["OURVOICE_ENV"] = "production"
    # Without the check the service would start and run until the timeout.
    finished = subprocess.run([sys.executable, "-m", "services.intake"], env=env,
                              capture_output=True, text=True, timeout=60)
    assert finished.returncode == 1
    assert "OURVOICE_SECRET" in finished.stderr and "OURVOICE_MASTER_KEY" in finished.stderr
