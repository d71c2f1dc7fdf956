"""Running one service as its own process (shared/runner.py), with a small stand-in
service on the real broker: it listens on its address alone, names an address another
process holds, and stops on SIGTERM without a traceback while the broker refuses it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# A service as the services are made: an RPC entrypoint and an RPC proxy, which share one
# queue consumer, and HTTP on its address.
STAND_IN = """
from shared import runner
runner.check("intake")
from shared.rpc import RpcProxy, rpc
from shared.web import http

class Service:
    name = "intake"
    routing = RpcProxy("routing")

    @rpc
    def ping(self):
        return "pong"

    @http("GET", "/ping")
    def get_ping(self, request):
        return "pong"

runner.main(Service)
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def bound(address: tuple[str, int], *, reuse_port: bool = False) -> socket.socket:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind(address)
    listener.listen()
    return listener


@pytest.fixture
def stand_in(tmp_path):
    """Start the stand-in on a free port, with a broker that does not answer (yet), or
    as a broker user the broker does not know: (the process, its address, its stderr)."""
    started = []

    def start(broker: str = "absent") -> tuple[subprocess.Popen, tuple[str, int], Path]:
        address = ("127.0.0.1", free_port())
        stderr = tmp_path / f"stand-in-{len(started)}.err"
        env = {**os.environ, "INTAKE_ADDRESS": f"{address[0]}:{address[1]}"}
        if broker == "absent":
            env["AMQP_URI"] = f"amqp://guest:guest@127.0.0.1:{free_port()}//"
        else:
            env |= {"INTAKE_BROKER_USER": f"ourvoice-nobody-{uuid.uuid4().hex[:8]}",
                    "INTAKE_BROKER_PASSWORD": "refused"}
        with open(stderr, "wb") as err:
            process = subprocess.Popen(
                [sys.executable, "-c", STAND_IN], cwd=ROOT, stdout=err, stderr=err, env=env)
        started.append(process)
        return process, address, stderr

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def listening(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=0.5):
            return True
    except OSError:
        return False


def test_a_service_refused_by_the_broker_stops_at_once_naming_the_user(stand_in):
    """A wrong broker password or user is a wrong setting: the service cannot start, and
    says so once, instead of trying again every second for ever."""
    process, _, stderr = stand_in(broker="refused")
    assert process.wait(timeout=30) == 1
    said = stderr.read_text()
    assert re.fullmatch(r"intake cannot use the broker as 'ourvoice-nobody-\w+' on virtual "
                        r"host '/': ACCESS_REFUSED - Login was refused.*",
                        said.strip().splitlines()[-1]), said
    assert "Traceback" not in said, said


def test_a_service_waiting_for_the_broker_stops_on_sigterm_without_a_traceback(stand_in):
    """The issue's `AssertionError: Trying to re-send() an already-triggered event`:
    nameko's stop of a container whose queue consumer never connected."""
    process, address, stderr = stand_in()
    wait_for(lambda: listening(address) and b"cannot reach the broker" in stderr.read_bytes(),
             timeout=30, what="the stand-in up and waiting for the broker")
    before = len(stderr.read_bytes())
    asked = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.send_signal(signal.SIGINT)  # a terminal's Ctrl-C besides: changes nothing
    assert process.wait(timeout=10) == 0
    took = time.monotonic() - asked
    after = stderr.read_bytes()[before:].decode()
    assert "Traceback" not in after and "Error" not in after, after
    # once, by whichever signal was handled first
    assert len(re.findall(r"intake: stopping \(SIG(TERM|INT)\) before it had started", after)) \
        == 1, after
    assert took < 2, took


def test_no_other_process_can_listen_on_a_service_address_beside_it(stand_in):
    """eventlet's default lets any process that asks bind a listening address too
    (SO_REUSEPORT), and then takes a share of its connections."""
    process, address, _ = stand_in()
    wait_for(lambda: listening(address), timeout=30, what="the stand-in listening")
    with pytest.raises(OSError) as refused:
        bound(address, reuse_port=True).close()
    assert "Address already in use" in str(refused.value)


@pytest.mark.parametrize("reuse_port", [False, True])
def test_a_service_whose_address_another_process_holds_stops_naming_it(stand_in, tmp_path,
                                                                       reuse_port):
    held = bound(("127.0.0.1", free_port()), reuse_port=reuse_port)
    try:
        with open(tmp_path / "held.err", "wb") as err:
            host, port = held.getsockname()
            done = subprocess.run(
                [sys.executable, "-c", STAND_IN], cwd=ROOT, stdout=err, stderr=err,
                env={**os.environ, "INTAKE_ADDRESS": f"{host}:{port}"}, timeout=30)
    finally:
        held.close()
    said = (tmp_path / "held.err").read_text()
    assert done.returncode == 1
    assert said.strip().splitlines()[-1] == \
        f"intake cannot listen on {host}:{port}: Address already in use", said
    assert "Traceback" not in said, said
