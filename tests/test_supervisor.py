"""`ourvoice run` (and so `make run`) keeps the services running: one killed comes back
while the others go on; Ctrl-C stops them all, quickly and quietly; a service that cannot
start stops the run. The real services, on a database and virtual host of their own."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.system import ROOT, System, free_port, wait_until

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
    """`ourvoice run` as a terminal runs it: its own process group, as a shell makes one.
    Its stdout goes to `log` and its stderr (the supervisor's lines and the services'
    logs) to `log` with `.err` added."""
    with open(log, "ab") as out, open(errors(log), "ab") as err:
        return subprocess.Popen([str(ROOT / ".venv" / "bin" / "ourvoice"), "run"], cwd=ROOT,
                                env={**system.env, **env}, stdout=out, stderr=err,
                                start_new_session=True)


def errors(log: Path) -> Path:
    return log.with_name(log.name + ".err")


def listens(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except OSError:
        return False


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


def counted_up(log: Path, service: str) -> bool:
    """Whether the supervisor's last word on `service` is that it is up: a test that
    kills it sooner would find it "could not start"."""
    said = [line for line in errors(log).read_text().splitlines()
            if line.startswith((f"{service}:", f"{service} "))]
    return bool(said) and said[-1].startswith((f"{service}: up on", f"{service}: up again on"))


def all_up(system: System, supervisor: subprocess.Popen, log: Path) -> None:
    """Every service a child of the supervisor, counted up by it and healthy, whatever a
    test before left."""
    wait_until(lambda: set(services_of(supervisor)) == set(system.urls)
               and all(counted_up(log, s) and healthy(system, s) for s in system.urls),
               timeout=90, what="all four services up")


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
    all_up(system, supervisor, log)
    before = services_of(supervisor)
    os.kill(before["routing"], signal.SIGKILL)
    deadline = time.monotonic() + 60
    while not (services_of(supervisor).get("routing", before["routing"]) != before["routing"]
               and counted_up(log, "routing") and healthy(system, "routing")):
        assert time.monotonic() < deadline, errors(log).read_text()[-3000:]
        for other in ("intake", "notifications", "reporting"):
            assert answering(system, other), f"{other} stopped answering"
        time.sleep(0.2)
    after = services_of(supervisor)
    assert {s: after[s] for s in after if s != "routing"} == \
        {s: before[s] for s in before if s != "routing"}
    said = errors(log).read_text()
    assert "routing exited with status -9" in said and "starting it again in 1 s" in said
    assert "routing: up again" in said


# What may be on stderr once Ctrl-C is pressed: each service saying it stops (its own
# line and nameko's), then the supervisor's last line. No warning, no traceback, no
# thread killed.
STOP_LINES = [
    re.compile(r"\S+ \S+ (\w+) INFO (\1: stopping \(SIGTERM\)|nameko\.runners: stopping "
               r"services: \1)"),
    re.compile(r"stopped: intake, routing, notifications, reporting"),
]


def test_ctrl_c_stops_everything_in_under_five_seconds_with_only_the_stop_lines(system,
                                                                                running):
    supervisor, log = running
    all_up(system, supervisor, log)
    children = services_of(supervisor)
    time.sleep(0.5)  # the last probe's access line written
    before = errors(log).stat().st_size
    started = time.monotonic()
    os.killpg(supervisor.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    supervisor.wait(timeout=10)
    wait_until(lambda: not any(alive(pid) for pid in children.values()), timeout=10,
               what="every service gone")
    took = time.monotonic() - started
    print(f"stopped in {took:.2f} s")
    assert took < 5, took
    assert supervisor.returncode == 0
    said = errors(log).read_bytes()[before:].decode().splitlines()
    assert said and all(any(line.fullmatch(said_line) for line in STOP_LINES)
                        for said_line in said), "\n".join(said)
    for service in system.urls:
        assert f"{service}: stopping (SIGTERM)" in "\n".join(said), service
    assert said[-1] == "stopped: intake, routing, notifications, reporting"
    assert "Traceback" not in errors(log).read_text()


def test_a_wrong_setting_stops_the_run_before_anything_starts(system, tmp_path):
    log = tmp_path / "run.log"
    supervisor = run(system, log, OURVOICE_SUBMISSIONS_PER_MINUTE="fast")
    try:
        assert supervisor.wait(timeout=30) == 1
    finally:
        if supervisor.poll() is None:
            os.killpg(supervisor.pid, signal.SIGKILL)
    said = errors(log).read_text()
    assert "OURVOICE_SUBMISSIONS_PER_MINUTE must be a whole number of at least 0, not 'fast'" \
        in said, said[-3000:]
    assert "Traceback" not in said, said[-3000:]
    for service in system.urls:
        assert not listens(system.env[f"{service.upper()}_ADDRESS"])


HOLDERS = {
    "a socket": "import socket, time\n"
                "held = socket.create_server(('{host}', {port}))\n"
                "time.sleep(120)",
    "a server answering 200": "import http.server\n"
                              "class Yes(http.server.BaseHTTPRequestHandler):\n"
                              "    def do_GET(self):\n"
                              "        self.send_response(200); self.end_headers()\n"
                              "http.server.HTTPServer(('{host}', {port}), Yes).serve_forever()",
}


@pytest.mark.parametrize("holder", sorted(HOLDERS))
def test_a_service_whose_address_another_process_holds_stops_the_run(system, tmp_path, holder):
    """The other process's answers are not intake's: the run stops naming intake and the
    address, instead of starting intake again for ever with a false "up again"."""
    addresses = {f"{service.upper()}_ADDRESS": f"127.0.0.1:{free_port()}"
                 for service in system.urls}
    taken = addresses["INTAKE_ADDRESS"]
    host, _, port = taken.rpartition(":")
    held = subprocess.Popen([sys.executable, "-c", HOLDERS[holder].format(host=host, port=port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = tmp_path / "run.log"
    try:
        wait_until(lambda: listens(taken), timeout=10, what="the address held")
        supervisor = run(system, log, **addresses)
        try:
            # from the services' start, the set-up done
            wait_until(lambda: "Ctrl-C stops them all." in log.read_text(), timeout=90,
                       what="the services started")
            started = time.monotonic()
            assert supervisor.wait(timeout=30) == 1
            took = time.monotonic() - started
        finally:
            if supervisor.poll() is None:
                os.killpg(supervisor.pid, signal.SIGKILL)
    finally:
        held.kill()
        held.wait()
    said = errors(log).read_text()
    print(f"stopped in {took:.2f} s")
    assert took < 10, took
    assert f"intake cannot listen on {taken}: Address already in use" in said, said[-3000:]
    assert f"intake on http://{taken} could not start (exit status 1); stopping the others" \
        in said, said[-3000:]
    assert "intake: up" not in said and "Traceback" not in said, said[-3000:]
    for service in ("routing", "notifications", "reporting"):
        assert not listens(addresses[f"{service.upper()}_ADDRESS"])
