"""`ourvoice run` (and so `make run`) keeps the services running: one killed comes back
while the others go on; Ctrl-C stops them all, quickly and quietly; a service that cannot
start stops the run. The real services, on a database and virtual host of their own."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from ourvoice.supervisor import answers
from tests.system import ROOT, System, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def system():
    system = System("supervisor")
    system.create()
    try:
        yield system
    finally:
        system.destroy()


def run(system: System, log: Path, **env: str) -> subprocess.Popen:
    """`ourvoice run` as a terminal runs it: its own process group, as a shell makes one."""
    with open(log, "ab") as out:
        return subprocess.Popen([str(ROOT / ".venv" / "bin" / "ourvoice"), "run"], cwd=ROOT,
                                env={**system.env, **env}, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def services_of(supervisor: subprocess.Popen) -> dict[str, int]:
    """Service name -> pid of the supervisor's children."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if parent == supervisor.pid and b"-m" in command:
            module = command[command.index(b"-m") + 1].decode()
            found[module.removeprefix("services.")] = int(entry.name)
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def healthy(system: System, service: str) -> bool:
    try:
        return requests.get(system.urls[service] + "/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def answering(system: System, service: str) -> bool:
    """The process answers: /health/live asks nothing of the database or the broker, so a
    machine busy with a restarting neighbour does not make a slow probe look like a stop."""
    try:
        return requests.get(system.urls[service] + "/health/live", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def all_up(system: System, supervisor: subprocess.Popen) -> None:
    """Every service a child of the supervisor and healthy, whatever a test before left."""
    wait_until(lambda: set(services_of(supervisor)) == set(system.urls)
               and all(healthy(system, s) for s in system.urls), timeout=90,
               what="all four services up")


@pytest.fixture(scope="module")
def running(system, tmp_path_factory):
    log = tmp_path_factory.mktemp("run") / "run.log"
    supervisor = run(system, log)
    try:
        for service in system.urls:
            wait_until(lambda s=service: healthy(system, s), timeout=90, what=f"{service} up")
        yield supervisor, log
    finally:
        if supervisor.poll() is None:
            os.killpg(supervisor.pid, signal.SIGKILL)
            supervisor.wait()


def test_a_killed_service_is_started_again_while_the_others_go_on(system, running):
    supervisor, log = running
    all_up(system, supervisor)
    before = services_of(supervisor)
    os.kill(before["routing"], signal.SIGKILL)
    deadline = time.monotonic() + 60
    while not (services_of(supervisor).get("routing", before["routing"]) != before["routing"]
               and healthy(system, "routing")):
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        for other in ("intake", "notifications", "reporting"):
            assert answering(system, other), f"{other} stopped answering"
        time.sleep(0.2)
    after = services_of(supervisor)
    assert {s: after[s] for s in after if s != "routing"} == \
        {s: before[s] for s in before if s != "routing"}
    output = log.read_text()
    assert "routing exited with status -9" in output and "starting it again in 1 s" in output
    assert "routing: up again" in output


def test_ctrl_c_stops_everything_in_under_five_seconds_without_a_traceback(system, running):
    supervisor, log = running
    all_up(system, supervisor)
    children = services_of(supervisor)
    started = time.monotonic()
    os.killpg(supervisor.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    supervisor.wait(timeout=10)
    wait_until(lambda: not any(alive(pid) for pid in children.values()), timeout=10,
               what="every service gone")
    took = time.monotonic() - started
    print(f"stopped in {took:.2f} s")
    assert took < 5, took
    assert supervisor.returncode == 0
    output = log.read_text()
    assert "Traceback" not in output and "AssertionError" not in output, output[-3000:]
    assert "stopped: intake, routing, notifications, reporting" in output


def test_a_wrong_setting_stops_the_run_before_anything_starts(system, tmp_path):
    log = tmp_path / "run.log"
    supervisor = run(system, log, OURVOICE_SUBMISSIONS_PER_MINUTE="fast")
    try:
        assert supervisor.wait(timeout=30) == 1
    finally:
        if supervisor.poll() is None:
            os.killpg(supervisor.pid, signal.SIGKILL)
    output = log.read_text()
    assert "OURVOICE_SUBMISSIONS_PER_MINUTE must be a whole number of at least 0, not 'fast'" \
        in output, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    for service in system.urls:
        assert not answers(system.env[f"{service.upper()}_ADDRESS"])
