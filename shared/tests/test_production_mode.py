"""Production mode: a service will not run on a secret anyone could read in the source."""

import os
import subprocess
import sys

import pytest

from shared.config import DEFAULTS, check_production


@pytest.mark.parametrize("secret", [None, "", DEFAULTS["OURVOICE_SECRET"]])
def test_production_refuses_a_missing_or_default_secret(monkeypatch, secret):
    monkeypatch.setenv("OURVOICE_ENV", "production")
    if secret is None:
        monkeypatch.delenv("OURVOICE_SECRET", raising=False)
    else:
        monkeypatch.setenv("OURVOICE_SECRET", secret)
    with pytest.raises(SystemExit) as refused:
        check_production()
    assert "OURVOICE_SECRET" in str(refused.value)


def test_production_runs_with_a_secret_of_its_own(monkeypatch):
    monkeypatch.setenv("OURVOICE_ENV", "production")
    monkeypatch.setenv("OURVOICE_SECRET", "a-key-of-this-deployment")
    check_production()


def test_development_keeps_the_default(monkeypatch):
    monkeypatch.delenv("OURVOICE_ENV", raising=False)
    monkeypatch.delenv("OURVOICE_SECRET", raising=False)
    check_production()


def test_a_service_in_production_without_its_secret_exits_before_listening():
    env = {k: v for k, v in os.environ.items() if k != "OURVOICE_SECRET"}
    env["OURVOICE_ENV"] = "production"
    # Without the check the service would start and run until the timeout.
    finished = subprocess.run([sys.executable, "-m", "services.intake"], env=env,
                              capture_output=True, text=True, timeout=60)
    assert finished.returncode == 1
    assert "OURVOICE_SECRET" in finished.stderr
