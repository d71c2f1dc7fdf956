"""The settings: each one read and checked at start, refused by name with what it accepts,
shown with its secrets masked, documented in the README and passed on by Compose."""

import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from shared import settings as configuration
from shared.config import env
from shared.settings import (
    CLI,
    DEFAULT,
    ENVIRONMENT,
    MASK,
    SERVICES,
    SETTINGS,
    SettingsError,
    load,
    reload,
)

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin"
# Which container of deploy/docker-compose.yml runs each reader.
COMPOSE_SERVICE = {**{service: service for service in SERVICES}, CLI: "setup"}


def without_settings() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in SETTINGS}


def test_every_default_is_a_value_its_setting_accepts():
    current = load({})
    assert (current.sweep_seconds, current.postgres_port, current.env) == (1.0, 5432, "development")
    assert current.citizen_token_retention == timedelta(days=90)
    assert current.sla_policies.is_file() and current.notifications_templates.is_dir()
    assert current.postgres_pre_ping is False and current.open311_keys is None
    assert set(current.sources.values()) == {DEFAULT}


def test_every_setting_says_who_reads_it_and_what_it_means():
    for name, s in SETTINGS.items():
        assert s.readers and set(s.readers) <= {*SERVICES, CLI}, name
        assert s.meaning and s.kind.accepts, name
    assert len(SETTINGS) == len(set(SETTINGS)) >= 70


@pytest.mark.parametrize("name, bad, accepts", [
    ("OURVOICE_SWEEP_SECONDS", "fast", "a number above 0"),
    ("OURVOICE_SWEEP_SECONDS", "0", "a number above 0"),
    ("OURVOICE_POLL_SECONDS", "nan", "a number above 0"),
    ("POSTGRES_PORT", "five", "a whole number of at least 1"),
    ("POSTGRES_POOL_SIZE", "0", "a whole number of at least 1"),
    ("OURVOICE_MESSAGES_PER_DAY", "-1", "a whole number of at least 1"),
    ("OURVOICE_PASSWORD_MIN_LENGTH", "4", "a whole number of at least 8"),
    ("OURVOICE_SESSION_IDLE", "30 minutes", "an ISO 8601 duration"),
    ("POSTGRES_PRE_PING", "maybe", "yes or no"),
    ("SMTP_STARTTLS", "sometimes", "yes or no"),
    ("SMS_GATEWAY_FORMAT", "xml", "exactly 'json' or 'form'"),
    ("NOTIFICATIONS_OFFICE_LANGUAGE", "fr", "exactly 'km' or 'en'"),
    ("INTAKE_ADDRESS", "8001", "HOST:PORT"),
    ("AMQP_URI", "localhost:5672", "an amqp:// or amqps:// URL"),
    ("SMS_GATEWAY_URL", "gateway", "a http:// or https:// URL"),
    ("OURVOICE_SLA_POLICIES", "no/such/file.yaml", "the path of a file that exists"),
    ("NOTIFICATIONS_TEMPLATES", "no/such/folder", "the path of a folder that exists"),
    ("SMS_GATEWAY_BODY", "{to: $to}", "a JSON object as template"),
    ("SMS_GATEWAY_BODY", "-5", "a JSON object as template"),
])
def test_a_wrong_value_is_refused_naming_the_variable_and_what_it_accepts(name, bad, accepts):
    with pytest.raises(SettingsError) as refused:
        load({name: bad})
    shown = "" if SETTINGS[name].secret else f", not {bad!r}"
    assert refused.value.problems == [f"{name} must be {SETTINGS[name].kind.accepts}{shown}"]
    assert accepts in SETTINGS[name].kind.accepts


def test_only_development_and_production_are_modes():
    for mode in ("prod", "Production", "dev", ""):
        with pytest.raises(SettingsError, match=re.escape(
                f"OURVOICE_ENV={mode!r} is not a mode: it must be exactly 'development' or "
                "'production'")):
            load({"OURVOICE_ENV": mode})
    assert load({"OURVOICE_ENV": "production"}).env == "production"


def test_every_wrong_value_is_named_at_once_and_no_secret_is_shown():
    with pytest.raises(SettingsError) as refused:
        load({"OURVOICE_SWEEP_SECONDS": "fast", "SMTP_PORT": "x",
              "OURVOICE_MASTER_KEY": "my-own-master-key", "OURVOICE_SECRET": "a:one,a:two"})
    assert sorted(p.split(" ", 1)[0] for p in refused.value.problems) == [
        "OURVOICE_MASTER_KEY", "OURVOICE_SECRET", "OURVOICE_SWEEP_SECONDS", "SMTP_PORT"]
    assert "my-own-master-key" not in str(refused.value) and "a:one" not in str(refused.value)


def test_an_empty_value_is_the_default_and_the_source_is_said():
    current = load({"OURVOICE_SUBMISSIONS_PER_MINUTE": "", "OURVOICE_SWEEP_SECONDS": "2.5"})
    assert current.submissions_per_minute == 600
    assert current.sources["OURVOICE_SUBMISSIONS_PER_MINUTE"] == DEFAULT
    assert (current.sweep_seconds, current.sources["OURVOICE_SWEEP_SECONDS"]) == (2.5, ENVIRONMENT)


def test_settings_are_read_once_until_a_test_reads_them_again(monkeypatch):
    before = configuration.settings().sweep_seconds
    monkeypatch.setenv("OURVOICE_SWEEP_SECONDS", str(before + 2))
    assert configuration.settings().sweep_seconds == before  # read as the process started
    assert reload().sweep_seconds == before + 2 == configuration.settings().sweep_seconds
    assert env("OURVOICE_SWEEP_SECONDS") == str(before + 2)


def test_env_answers_only_a_known_setting():
    assert env("POSTGRES_DBNAME") == configuration.settings().postgres_dbname
    with pytest.raises(KeyError, match="OURVOICE_SWEEP is not a setting"):
        env("OURVOICE_SWEEP")


def run(command: list[str], **changes: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, env={**without_settings(), **changes}, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_a_service_started_with_a_wrong_value_exits_with_its_name_and_what_it_accepts():
    finished = run([sys.executable, "-m", "services.routing"], OURVOICE_SWEEP_SECONDS="fast")
    assert finished.returncode == 1
    assert finished.stderr.strip() == \
        "routing: OURVOICE_SWEEP_SECONDS must be a number above 0, not 'fast'"


def test_config_check_prints_every_setting_with_secrets_masked_and_where_it_came_from():
    secret = "2026a:" + "q" * 40
    finished = run([str(BIN / "ourvoice"), "config", "check"], OURVOICE_SECRET=secret,
                   AMQP_URI="amqp://operator:hunter2hunter2@rabbitmq:5672/ourvoice",
                   OURVOICE_SWEEP_SECONDS="2")
    assert finished.returncode == 0, finished.stderr
    lines = {line.split()[0]: line.split(None, 1)[1] for line in finished.stdout.splitlines()
             if line.split()[0] in SETTINGS}
    assert set(lines) == set(SETTINGS)
    assert lines["OURVOICE_SWEEP_SECONDS"] == "2  (environment)"
    assert lines["OURVOICE_SECRET"] == f"{MASK}  (environment)"
    assert lines["OURVOICE_MASTER_KEY"] == f"{MASK}  (default)"
    assert lines["AMQP_URI"] == f"amqp://operator:{MASK}@rabbitmq:5672/ourvoice  (environment)"
    assert lines["POSTGRES_PORT"] == "5432  (default)"
    assert "hunter2" not in finished.stdout and "q" * 40 not in finished.stdout


def test_config_check_exits_1_naming_every_problem():
    finished = run([str(BIN / "ourvoice"), "config", "check"], OURVOICE_ENV="prod",
                   SMTP_PORT="x")
    assert finished.returncode == 1
    assert "OURVOICE_ENV='prod' is not a mode" in finished.stderr
    assert "SMTP_PORT must be a whole number of at least 1, not 'x'" in finished.stderr
    weak = run([str(BIN / "ourvoice"), "config", "check"], OURVOICE_ENV="production")
    assert weak.returncode == 1
    assert all(name in weak.stderr for name in ("OURVOICE_SECRET", "OURVOICE_MASTER_KEY",
                                                "OURVOICE_CHECKPOINT_KEY",
                                                "INTAKE_BROKER_PASSWORD"))


def test_the_readme_table_is_the_settings_module_s():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    table = "\n".join(line for line in section.splitlines() if line.startswith("|")) + "\n"
    assert table == configuration.markdown(), \
        "the README's table differs: paste `python -m shared.settings --markdown` into it"


def compose_environments() -> dict[str, dict]:
    compose = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())
    return {name: service.get("environment") or {}
            for name, service in compose["services"].items()}


def test_compose_passes_each_service_every_setting_it_reads():
    environments = compose_environments()
    missing = {
        COMPOSE_SERVICE[reader]: sorted(
            name for name, s in SETTINGS.items()
            if s.compose and reader in s.readers and name not in environments[
                COMPOSE_SERVICE[reader]])
        for reader in (*SERVICES, CLI)}
    assert {service: names for service, names in missing.items() if names} == {}


def test_compose_passes_nothing_that_is_not_a_setting():
    ours = re.compile(r"(OURVOICE|POSTGRES|SMTP|SMS|NOTIFICATIONS|INTAKE|ROUTING|REPORTING"
                      r"|AMQP|RABBITMQ)_")
    environments = compose_environments()
    for service in COMPOSE_SERVICE.values():
        unknown = [name for name in environments[service]
                   if ours.match(name) and name not in SETTINGS]
        assert unknown == [], service


def test_every_variable_the_code_reads_is_a_setting():
    """A read of the environment by name anywhere in the services or the kernel names a
    setting of the module (what a library reads, PSYCOPG_WAIT_FUNC, is set, not read)."""
    read = re.compile(r"""(?:os\.environ\.get\(|os\.getenv\(|os\.environ\[|\benv\(|\bsetting\()"""
                      r"""\s*["']([A-Z][A-Z0-9_]+)["']""")
    found = {name for folder in ("shared", "services")
             for path in (ROOT / folder).rglob("*.py") if "tests" not in path.parts
             for name in read.findall(path.read_text(encoding="utf-8"))}
    assert found and found - set(SETTINGS) == set()


def test_amqp_uri_may_list_the_nodes_of_a_cluster_with_one_login_and_virtual_host():
    nodes = "amqp://operator:pw@mq1:5672/ourvoice; amqp://operator:pw@mq2:5672/ourvoice"
    assert load({"AMQP_URI": nodes}).amqp_uri == nodes.replace("; ", ";")
    for mixed in ("amqp://operator:pw@mq1/ourvoice;amqp://operator:pw@mq2/other",
                  "amqp://operator:pw@mq1/ourvoice;amqp://guest:guest@mq2/ourvoice",
                  "amqp://operator:pw@mq1/ourvoice;mq2:5672"):
        with pytest.raises(SettingsError) as refused:
            load({"AMQP_URI": mixed})
        assert refused.value.problems[0].startswith("AMQP_URI ")
        assert "pw" not in str(refused.value) and "guest" not in str(refused.value)


def test_each_node_gets_a_services_login_and_every_password_is_masked():
    from shared.config import amqp_uri_as

    nodes = "amqp://operator:hunter2hunter2@mq1:5672/v;amqp://operator:hunter2hunter2@mq2:5673/v"
    assert amqp_uri_as("ourvoice-routing", "s3cr3t", nodes) == \
        "amqp://ourvoice-routing:s3cr3t@mq1:5672/v;amqp://ourvoice-routing:s3cr3t@mq2:5673/v"
    assert configuration.shown(SETTINGS["AMQP_URI"], nodes) == \
        f"amqp://operator:{MASK}@mq1:5672/v;amqp://operator:{MASK}@mq2:5673/v"
