"""A PostgreSQL cluster and a RabbitMQ node of the fault suite's own, on other ports, so
that restarting them never disturbs the machine's own services."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
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
    def __init__(self, port: int | None = None, dist_port: int | None = None):
        self.port = port = port or free_port()
        dist_port = dist_port or free_port()
        self.node = "ourvoice-faults@localhost"
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

    def ctl(self, *args: str) -> None:
        subprocess.run(["rabbitmqctl", "-n", self.node, *args], check=True,
                       capture_output=True, timeout=120)

    def create(self) -> None:
        server = "/usr/lib/rabbitmq/bin/rabbitmq-server"
        if not Path(server).exists():
            server = shutil.which("rabbitmq-server")
        _as("rabbitmq", server, "-detached", env=self.env)
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

    def stop(self) -> None:
        try:
            self.ctl("stop")
        except subprocess.CalledProcessError:
            pass  # not running
        shutil.rmtree(self.dir, ignore_errors=True)
