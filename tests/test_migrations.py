"""An upgrade from the previous release: a database and broker made by v0.1.0, with a case
its services recorded, brought up to date by `ourvoice migrate`, then run by today's
services through the core flow, the old case's events replaying beside new ones."""

import subprocess
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

import psycopg
import pytest

from tests.system import ROOT, System, act, citizen_view, complaint, rabbitmqctl, submit, wait_until

pytestmark = pytest.mark.e2e

PREVIOUS = "v0.1.0"
RELEASED = "59785bdb5057e4a5b32a2e22b74e37daae079329"  # the commit tagged v0.1.0
SERVICES = ("intake", "routing", "notifications", "reporting")


def previous_release(folder: Path) -> Path:
    """The code of the previous release, from its commit: a clone carries the history of
    main but not always its tags, so the release is named by the commit it tagged. Without
    that commit (a shallow clone) there is no upgrade to test, and that is a failure of the
    clone, not a reason to pass."""
    found = subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{RELEASED}^{{commit}}"],
                           capture_output=True)
    if found.returncode != 0:
        pytest.fail(f"commit {RELEASED} ({PREVIOUS}) is missing from this clone: the upgrade "
                    f"from the previous release cannot be tested (git fetch --unshallow)")
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", RELEASED],
                             capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def as_released(system: System, code: Path) -> dict:
    """The system's settings, with the previous release's code in place of today's."""
    return {**system.env, "PYTHONPATH": str(code)}


def run_previous(system: System, code: Path, *args: str) -> str:
    """The previous release's `ourvoice` command (its CLI was shared.cli then)."""
    done = subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-c",
                           "import sys; from shared.cli import main; sys.exit(main())", *args],
                          cwd=code, env=as_released(system, code), capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, f"{PREVIOUS} {' '.join(args)}: {done.stderr[-3000:]}"
    return done.stdout


def start_previous(system: System, code: Path) -> None:
    for service in SERVICES:
        log = open(system.logs / f"{service}-{PREVIOUS}.log", "ab")
        system.processes[service] = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "python"), "-m", f"services.{service}"], cwd=code,
            env=as_released(system, code), stdout=log, stderr=subprocess.STDOUT)
    for service in SERVICES:
        wait_until(lambda s=service: system.healthy(s), timeout=90, what=f"{PREVIOUS} {service}")


def schema(dbname: str) -> tuple[set, set]:
    """Every column (table, name, type, nullability) and every index of a database."""
    with psycopg.connect(f"host=127.0.0.1 user=postgres dbname={dbname}") as conn:
        columns = set(conn.execute(
            "SELECT table_name, column_name, data_type, is_nullable"
            " FROM information_schema.columns WHERE table_schema = 'public'").fetchall())
        indexes = set(conn.execute(
            "SELECT tablename, indexdef FROM pg_indexes WHERE schemaname = 'public'").fetchall())
    return columns, indexes


@pytest.fixture(scope="module")
def upgraded():
    """The system as the previous release left it, with a case routed, then migrated and
    run by today's services."""
    system = System("migrations")
    fresh = f"{system.dbname}_fresh"
    with tempfile.TemporaryDirectory() as folder:
        code = previous_release(Path(folder))
        try:
            rabbitmqctl("add_vhost", system.vhost)
            rabbitmqctl("set_permissions", "-p", system.vhost, "guest", ".*", ".*", ".*")
            run_previous(system, code, "setup")
            start_previous(system, code)
            token = run_previous(system, code, "principal", "create",
                                 "--role", "auditor").strip().splitlines()[-1]
            old_case = submit(system, complaint(category="water-supply"))
            wait_until(lambda: routed(system, old_case, token), timeout=60,
                       what=f"the case routed by {PREVIOUS}")
            wait_until(system.settled, timeout=60, what=f"{PREVIOUS}'s events counted")
            system.stop_all()
            before = system.ourvoice("migrate", "status", check=False)
            migrated = system.ourvoice("migrate")
            status = system.ourvoice("migrate", "status", check=False)
            subprocess.run([str(ROOT / ".venv" / "bin" / "ourvoice"), "migrate"],
                           env={**system.env, "POSTGRES_DBNAME": fresh}, check=True,
                           capture_output=True, timeout=120)
            system.start_all()
            yield system, old_case, before, migrated, status, fresh
        finally:
            system.destroy()
            with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres",
                                 autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{fresh}" WITH (FORCE)')


def routed(system: System, case: dict, token: str) -> bool:
    response = system.call("GET", "routing", "/v1/offices/commune-120101/queue", token)
    return response.status_code == 200 and any(
        c["tracking_code"] == case["tracking_code"] for c in response.json()["cases"])


def test_migrate_takes_the_previous_schema_and_status_is_then_clean(upgraded):
    system, _, before, migrated, status, _ = upgraded
    assert before.returncode == 1 and "pending" in before.stdout, before.stdout
    assert "intake 2: index the case list by category" in migrated.stdout, migrated.stdout
    assert "notifications 2: index each case's streams" in migrated.stdout, migrated.stdout
    assert "reporting 2: retire the audit's indexes of the other stores" in migrated.stdout, \
        migrated.stdout
    assert status.returncode == 0, status.stdout
    assert "pending" not in status.stdout, status.stdout
    assert system.scalar("SELECT count(*) FROM pg_indexes"
                         " WHERE indexname = 'intake_cases_category'") == 1


def test_the_upgraded_database_has_the_tables_of_a_new_one(upgraded):
    system, *_, fresh = upgraded
    assert schema(system.dbname) == schema(fresh)


def test_the_case_of_the_previous_release_goes_on_to_its_resolution(upgraded):
    system, old_case, *_ = upgraded
    staff = system.principal("staff", "commune-120101")
    act(system, old_case, "acknowledge", staff)
    act(system, old_case, "resolve", staff, {"resolution": "The pipe is mended."})
    wait_until(lambda: citizen_view(system, old_case)["status"] == "resolved",
               what="the old case resolved")


def test_a_new_case_takes_the_core_flow(upgraded):
    system, *_ = upgraded
    staff = system.principal("staff", "commune-120101")
    case = submit(system, complaint(description="The street lamp by the school is out."))
    wait_until(lambda: citizen_view(system, case)["status"] == "routed", what="routed")
    act(system, case, "acknowledge", staff)
    act(system, case, "resolve", staff, {"resolution": "The lamp is lit again."})
    view = wait_until(lambda: (v := citizen_view(system, case))["status"] == "resolved" and v,
                      what="resolved")
    assert [e["event_type"] for e in view["timeline"]][:2] == ["CaseSubmitted", "CaseRouted"]


def test_the_events_of_the_previous_release_still_replay(upgraded):
    system, old_case, *_ = upgraded
    wait_until(system.settled, what="every event counted")
    history = system.ourvoice("audit", "history", old_case["tracking_code"])
    for event_type in ("CaseSubmitted", "CaseRouted", "CaseAcknowledged", "CaseResolved"):
        assert event_type in history.stdout, history.stdout
    rebuilt = system.ourvoice("projections", "rebuild", "--all", "--check", check=False)
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    verified = system.ourvoice("audit", "verify", check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr
