"""A PostgreSQL cluster, a RabbitMQ node and a cluster of three RabbitMQ nodes of the fault
suite's own, on other ports, so that restarting them never disturbs the machine's own
services."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from tests.system import free_port


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    if not versions:
        raise RuntimeError(f"PostgreSQL's {name} is not installed")
    return str(versions[-1] / name)


def _as(user: str, *command: str, env: dict | None = None, timeout: float = 120) -> None:
    """Database servers refuse to run as root; run them as their own system user."""
    prefix = ["runuser", "-u", user, "--"] if os.geteuid() == 0 else []
    subprocess.run([*prefix, *command], check=True, capture_output=True, env=env,
                   timeout=timeout)


class ThrowawayPostgres:
    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="ourvoice-faults-pg-"))
        self.data = self.dir / "data"
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")

    def create(self) -> None:
        _as("postgres", _pg_bin("initdb"), "-D", str(self.data), "-U", "postgres",
            "--auth=trust", "-E", "UTF8")
        self.start()

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                   "-c max_connections=200 -c fsync=off -c synchronous_commit=off")
        try:
            _as("postgres", _pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "log"),
                "-o", options, "-w", "start")
        except subprocess.CalledProcessError as failed:
            raise RuntimeError(f"the fault suite's PostgreSQL did not start: {self.log_tail()}") \
                from failed

    def log_tail(self) -> str:
        log = self.dir / "log"
        return log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"

    def restart(self) -> None:
        # With -l the server's output goes to the log, not to a pipe we would wait on.
        _as("postgres", _pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "log"),
            "-m", "fast", "-w", "restart")

    def stop(self) -> None:
        if self.data.exists():
            try:
                _as("postgres", _pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate",
                    "-w", "stop")
            except subprocess.CalledProcessError:
                pass  # not running
        shutil.rmtree(self.dir, ignore_errors=True)

    def connect(self, dbname: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname}",
                               autocommit=True)


class ThrowawayRabbitMQ:
    """One RabbitMQ node with a name, ports and base folder of its own, run as the
    rabbitmq user. Every node started so shares that user's home, so its Erlang cookie:
    the nodes of a ThrowawayRabbitCluster may join each other."""

    def __init__(self, port: int | None = None, dist_port: int | None = None,
                 node: str = "ourvoice-faults@localhost"):
        self.port = port = port or free_port()
        dist_port = dist_port or free_port()
        self.node = node
        self.dir = Path(tempfile.mkdtemp(prefix="ourvoice-faults-mq-"))
        (self.dir / "log").mkdir()
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{port}\n")
        (self.dir / "enabled_plugins").write_text("[].\n")  # no management port to collide
        if os.geteuid() == 0:
            for path in [self.dir, *self.dir.rglob("*")]:
                shutil.chown(path, "rabbitmq", "rabbitmq")
        self.env = {
            **os.environ,
            "HOME": "/var/lib/rabbitmq" if os.geteuid() == 0 else os.environ["HOME"],
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(port),
            "RABBITMQ_DIST_PORT": str(dist_port),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_PID_FILE": str(self.dir / "pid"),
        }

    @property
    def uri(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def ctl(self, *args: str) -> str:
        return subprocess.run(["rabbitmqctl", "-n", self.node, *args], check=True,
                              capture_output=True, text=True, timeout=120).stdout

    def create(self) -> None:
        self.start()

    def start(self) -> None:
        """Start the node (again, with what it had, after `stop_node`)."""
        self.launch()
        self.await_startup()

    def launch(self) -> None:
        server = "/usr/lib/rabbitmq/bin/rabbitmq-server"
        if not Path(server).exists():
            server = shutil.which("rabbitmq-server")
        _as("rabbitmq", server, "-detached", env=self.env)

    def await_startup(self) -> None:
        deadline = time.monotonic() + 90
        while True:
            try:
                self.ctl("await_startup", "--timeout", "10")
                return
            except subprocess.CalledProcessError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)

    def restart_app(self) -> None:
        """`rabbitmqctl stop_app` then `start_app`: every connection drops."""
        self.ctl("stop_app")
        self.ctl("start_app")
        self.ctl("await_startup", "--timeout", "60")

    def stop_node(self) -> None:
        """`rabbitmqctl stop`: the whole node goes, its folder stays for `start`."""
        try:
            self.ctl("stop")
        except subprocess.SubprocessError:
            pass  # not running, or not answering: the pid file says
        # The pid file names the node's Erlang VM, which we started: make sure it is gone.
        pid_file = self.dir / "pid"
        if pid_file.exists():
            pid = int(pid_file.read_text().strip() or 0)
            deadline = time.monotonic() + 30
            while pid and _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if pid and _alive(pid):
                os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        self.stop_node()
        shutil.rmtree(self.dir, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class ThrowawayRabbitCluster:
    """Three RabbitMQ nodes on this machine, on ports of their own, joined in one cluster:
    what quorum queues replicate over, and what a service fails over between."""

    def __init__(self, size: int = 3):
        tag = uuid.uuid4().hex[:6]
        self.nodes = [ThrowawayRabbitMQ(node=f"ourvoice-cluster-{letter}-{tag}@localhost")
                      for letter in "abcdefg"[:size]]

    @property
    def first(self) -> ThrowawayRabbitMQ:
        return self.nodes[0]

    def create(self) -> None:
        for node in self.nodes:  # booting side by side
            node.launch()
        for node in self.nodes:
            node.await_startup()
        for node in self.nodes[1:]:
            node.ctl("stop_app")
            node.ctl("join_cluster", self.first.node)
            node.ctl("start_app")
            node.ctl("await_startup", "--timeout", "60")
        running = self.running()
        if running != {node.node for node in self.nodes}:
            raise RuntimeError(f"the cluster runs {sorted(running)}, not all its nodes")

    def running(self, asked: ThrowawayRabbitMQ | None = None) -> set[str]:
        """The nodes running in the cluster, as `asked` (the first node) sees it."""
        status = json.loads((asked or self.first).ctl("cluster_status", "--formatter", "json"))
        return set(status["running_nodes"])

    def stop(self) -> None:
        # Every node is stopped, whatever became of the others.
        failures = []
        for node in reversed(self.nodes):
            try:
                node.stop()
            except Exception as failure:  # noqa: BLE001 - raised once all are stopped
                failures.append(failure)
        if failures:
            raise failures[0]
