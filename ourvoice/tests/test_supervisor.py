"""The supervisor with small stand-ins for services (a process that listens on a port for
a while, or one that fails at once); the real services are in tests/test_supervisor.py."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

import pytest

from ourvoice import supervisor
from ourvoice.supervisor import Supervisor, next_wait


def test_the_wait_doubles_from_one_second_to_thirty_and_starts_again_after_a_minute_up():
    waits, wait = [], None
    for _ in range(8):
        wait = next_wait(wait, seconds_up=2)
        waits.append(wait)
    assert waits == [1, 2, 4, 8, 16, 30, 30, 30]
    assert next_wait(30, seconds_up=61) == 1


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening(port: int, seconds: float, status: int = 5, *, name: str = "one",
              delay: float = 0) -> list[str]:
    """A stand-in service `name`: after `delay` (a service's start), up on its port for
    `seconds`, answering GET /health/live as a service does, then it exits with `status`;
    it exits with 1 at once when it cannot listen on its port."""
    return [sys.executable, "-c",
            "import http.server, json, os, sys, threading, time\n"
            f"time.sleep({delay})\n"
            "class Live(http.server.BaseHTTPRequestHandler):\n"
            "    def do_GET(self):\n"
            f"        body = json.dumps({{'service': {name!r}, 'pid': os.getpid()}}).encode()\n"
            "        self.send_response(200); self.end_headers(); self.wfile.write(body)\n"
            "    def log_message(self, *args): pass\n"
            "try:\n"
            f"    server = http.server.HTTPServer(('127.0.0.1', {port}), Live)\n"
            "except OSError as error:\n"
            "    sys.exit(f'cannot listen: {error.strerror}')\n"
            "threading.Thread(target=server.serve_forever, daemon=True).start()\n"
            f"time.sleep({seconds}); sys.exit({status})"]


def run_for(watched: Supervisor, seconds: float) -> int:
    threading.Timer(seconds, lambda: setattr(watched, "stopping", True)).start()
    return watched.run()


def test_a_service_that_exits_is_started_again_and_the_others_go_on(monkeypatch):
    monkeypatch.setattr(supervisor, "FIRST_WAIT", 0.2)
    said = []
    steady, fragile = free_port(), free_port()
    watched = Supervisor({"steady": (listening(steady, 60, name="steady"), f"127.0.0.1:{steady}"),
                          "fragile": (listening(fragile, 0.6, name="fragile"),
                                      f"127.0.0.1:{fragile}")},
                         say=said.append)
    first_steady = []
    original = watched.start

    def start(child):
        original(child)
        if child.name == "steady":
            first_steady.append(child.process.pid)

    watched.start = start
    assert run_for(watched, 3.5) == 0
    assert watched.children["fragile"].starts >= 2
    assert watched.children["steady"].starts == 1 and len(first_steady) == 1
    assert any(line.startswith("fragile exited with status 5") for line in said), said
    assert f"steady: up on http://127.0.0.1:{steady}" in said
    assert any("fragile: up again" in line for line in said), said
    assert all(c.process.poll() is not None for c in watched.children.values())


def test_a_service_that_cannot_start_stops_the_run_with_status_1():
    said = []
    steady, broken = free_port(), free_port()
    watched = Supervisor({"steady": (listening(steady, 60, name="steady"), f"127.0.0.1:{steady}"),
                          "broken": ([sys.executable, "-c", "raise SystemExit('bad setting')"],
                                     f"127.0.0.1:{broken}")}, say=said.append)
    started = time.monotonic()
    assert watched.run() == 1
    assert time.monotonic() - started < 10
    assert f"broken on http://127.0.0.1:{broken} could not start (exit status 1); " \
        "stopping the others" in said
    assert watched.children["steady"].process.poll() is not None


def holding(port: int, naming: str | None) -> list[str]:
    """Another process's server on a service's address: 200 to everything, naming
    `naming` with its own pid (None: an empty page). A process of its own, as it is in
    life (and in this process the services' imports leave http.server on green sockets)."""
    return [sys.executable, "-c",
            "import http.server, json, os\n"
            "class Holder(http.server.BaseHTTPRequestHandler):\n"
            "    def do_GET(self):\n"
            f"        naming = {naming!r}\n"
            "        body = b'' if naming is None else json.dumps(\n"
            "            {'status': 'alive', 'service': naming, 'pid': os.getpid()}).encode()\n"
            "        self.send_response(200); self.end_headers(); self.wfile.write(body)\n"
            "    def log_message(self, *args): pass\n"
            f"http.server.HTTPServer(('127.0.0.1', {port}), Holder).serve_forever()"]


def answering(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.mark.parametrize("holder", ["a socket", "a server answering 200",
                                    "a server naming the service"])
def test_a_service_whose_address_another_process_holds_cannot_start(holder):
    """Whatever answers on its address, a service is up only when it answers itself: the
    one that failed to listen there stops the run, instead of being counted up (and
    restarted for ever) on the strength of the other's answers."""
    said = []
    steady, taken = free_port(), free_port()
    if holder == "a socket":
        held = socket.create_server(("127.0.0.1", taken))
        closing = held.close
    else:
        server = subprocess.Popen(holding(taken, None if holder.endswith("200") else "intake"))
        deadline = time.monotonic() + 10
        while not answering(taken):
            assert time.monotonic() < deadline and server.poll() is None, "the holder is up"
            time.sleep(0.05)

        def closing():
            server.kill()
            server.wait()
    try:
        watched = Supervisor(
            {"steady": (listening(steady, 60, name="steady"), f"127.0.0.1:{steady}"),
             "intake": (listening(taken, 60, name="intake", delay=0.5), f"127.0.0.1:{taken}")},
            say=said.append)
        bound = threading.Timer(8, lambda: setattr(watched, "stopping", True))
        bound.start()
        started = time.monotonic()
        assert watched.run() == 1, said
        assert time.monotonic() - started < 5, said
    finally:
        bound.cancel()
        closing()
    assert f"intake on http://127.0.0.1:{taken} could not start (exit status 1); " \
        "stopping the others" in said, said
    assert not any(line.startswith("intake: up") for line in said), said
    assert watched.children["intake"].starts == 1


@pytest.mark.parametrize("stubborn", [False, True])
def test_a_stop_ends_every_service_within_the_stop_time(stubborn):
    port = free_port()
    ignore = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" if stubborn else ""
    command = listening(port, 60)
    command[2] = ignore + command[2]
    said = []
    watched = Supervisor({"one": (command, f"127.0.0.1:{port}")}, say=said.append)
    asked = []

    def stop():
        asked.append(time.monotonic())
        watched.stopping = True

    threading.Timer(1.0, stop).start()
    watched.run()
    assert watched.children["one"].process.poll() is not None
    assert time.monotonic() - asked[0] < (supervisor.STOP_SECONDS + 0.5 if stubborn else 1)
    assert ("one did not stop within 4 s; killed" in said) == stubborn
