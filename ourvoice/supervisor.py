"""`ourvoice run`: every service as a process of its own, kept running.

A service that exits is started again after a wait that doubles from one second up to
thirty, and starts again at one second once the service had stayed up for a minute. A
service is up when its own process answers on its address (`answers`); one that exits
before it was ever up cannot start at all, most often for a wrong setting or an address
another process holds: the run stops with its error and exit status 1.

Each service runs in a process group of its own, so a terminal's Ctrl-C reaches only
the supervisor, which stops each service once (SIGTERM) and kills what is still there
after `STOP_SECONDS`."""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

FIRST_WAIT = 1.0
LONGEST_WAIT = 30.0
STEADY_SECONDS = 60.0  # up this long, a service's next restart waits FIRST_WAIT again
STOP_SECONDS = 4.0
TICK = 0.1


def service_command(service: str) -> list[str]:
    """The one command that runs a service: used by `ourvoice run`, the tests and the image."""
    return [sys.executable, "-m", f"services.{service}"]


def next_wait(previous: float | None, seconds_up: float) -> float:
    """How long to wait before starting again a service that exited after `seconds_up`,
    the wait before its last start having been `previous` (None: it never waited)."""
    if previous is None or seconds_up >= STEADY_SECONDS:
        return FIRST_WAIT
    return min(previous * 2, LONGEST_WAIT)


def answers(address: str, service: str, pid: int) -> bool:
    """Whether process `pid` answers as `service` on HOST:PORT (GET /health/live). Not
    merely something there: another process that holds the address would answer while
    the service fails to listen on it."""
    host, _, port = address.rpartition(":")
    connection = http.client.HTTPConnection(host or "127.0.0.1", int(port), timeout=0.5)
    try:
        connection.request("GET", "/health/live")
        answer = connection.getresponse()
        if answer.status != 200:
            return False
        said = json.loads(answer.read())
    except (OSError, http.client.HTTPException, ValueError):
        return False
    finally:
        connection.close()
    return isinstance(said, dict) and said.get("service") == service and said.get("pid") == pid


def _die_with_parent() -> None:
    """In the child, before it runs: a SIGTERM when the supervisor dies, even by kill -9,
    so that no service outlives it in its own process group (Linux; elsewhere none)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@dataclass
class Child:
    name: str
    command: Sequence[str]
    address: str
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    up: bool = False
    ever_up: bool = False
    wait: float | None = None
    restart_at: float | None = None
    starts: int = field(default=0)


class Supervisor:
    def __init__(self, children: Mapping[str, tuple[Sequence[str], str]], *,
                 say: Callable[[str], None] | None = None,
                 env: Mapping[str, str] | None = None):
        self.children = {name: Child(name, command, address)
                         for name, (command, address) in children.items()}
        self.say = say or (lambda line: print(line, file=sys.stderr, flush=True))
        self.env = dict(env) if env is not None else None
        self.stopping = False

    def start(self, child: Child) -> None:
        child.process = subprocess.Popen(child.command, env=self.env, start_new_session=True,
                                         preexec_fn=_die_with_parent)
        child.started_at, child.up, child.restart_at = time.monotonic(), False, None
        child.starts += 1

    def stop_signal(self, signum, frame) -> None:
        self.stopping = True  # a second signal changes nothing: the stop is under way

    def run(self) -> int:
        before = {signum: signal.signal(signum, self.stop_signal)
                  for signum in (signal.SIGINT, signal.SIGTERM)}
        try:
            for child in self.children.values():
                self.start(child)
            while not self.stopping:
                failed = self.watch()
                if failed:
                    return 1
                time.sleep(TICK)
            return 0
        finally:
            self.stop_all()
            for signum, handler in before.items():
                signal.signal(signum, handler)

    def watch(self) -> bool:
        """One look at every service; True when one cannot start at all."""
        now = time.monotonic()
        for child in self.children.values():
            if child.restart_at is not None:
                if now >= child.restart_at:
                    self.say(f"{child.name}: starting again")
                    self.start(child)
                continue
            code = child.process.poll()
            if code is None:
                if not child.up and answers(child.address, child.name, child.process.pid):
                    child.up = child.ever_up = True
                    again = " again" if child.starts > 1 else ""
                    self.say(f"{child.name}: up{again} on http://{child.address}")
                continue
            if not child.ever_up:
                self.say(f"{child.name} on http://{child.address} could not start "
                         f"(exit status {code}); stopping the others")
                return True
            seconds_up = now - child.started_at
            child.wait = next_wait(child.wait, seconds_up)
            child.restart_at = now + child.wait
            self.say(f"{child.name} exited with status {code} after {seconds_up:.0f} s up; "
                     f"starting it again in {child.wait:.0f} s")
        return False

    def stop_all(self) -> None:
        """SIGTERM to each service once; SIGKILL to what is left after STOP_SECONDS."""
        running = [c for c in self.children.values() if c.process and c.process.poll() is None]
        for child in running:
            child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        for child in running:
            try:
                child.process.wait(timeout=max(0.05, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say(f"{child.name} did not stop within {STOP_SECONDS:.0f} s; killed")
                child.process.kill()
                child.process.wait()
        if running:
            self.say(f"stopped: {', '.join(c.name for c in running)}")


def run(services: Sequence[str]) -> int:
    """`ourvoice run`: the set-up, then the services until Ctrl-C or SIGTERM."""
    from ourvoice.setup import setup
    from shared.settings import settings

    setup()
    children = {name: (service_command(name), settings().address(name)) for name in services}
    for name, (_, address) in children.items():
        print(f"{name:<14} http://{address}", flush=True)
    print("Ctrl-C stops them all.", flush=True)
    return Supervisor(children).run()
