"""The Compose stack under test: deploy/docker-compose.yml with docker-compose.host.yml on
top and test.env as its settings, driven through the same Compose command an operator
uses, and looked into through its published ports."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import psycopg
import requests
from psycopg.rows import dict_row

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
ENV_FILE = HERE / "test.env"
PROJECT = "ourvoicedeploytest"
SERVICES = ("intake", "routing", "notifications", "reporting")
# Settings a developer's shell may hold for `make run`; the stack takes its own from
# test.env alone.
OWN_SETTINGS = ("OURVOICE_", "POSTGRES_", "RABBITMQ_", "AMQP_URI", "PGPORT", "COMPOSE_")
# Figures the run measures, printed at its end.
FIGURES: dict[str, str] = {}


def read_env_file(path: Path) -> dict[str, str]:
    settings = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            settings[name.strip()] = value.strip()
    return settings


def compose_command() -> list[str]:
    """The Compose plugin where the engine has it, else the standalone docker-compose."""
    plugin = subprocess.run(["docker", "compose", "version"], capture_output=True)
    if plugin.returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise AssertionError("neither `docker compose` nor `docker-compose` is installed; "
                         "run tests/deploy/prepare.sh (make test-deploy does)")


def wait_until(condition, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


class Stack:
    def __init__(self, env_file: Path = ENV_FILE):
        self.env_file = env_file
        self.settings = read_env_file(env_file)
        self.process_env = {k: v for k, v in os.environ.items() if not k.startswith(OWN_SETTINGS)}
        self.base = [*compose_command(), "-p", PROJECT, "--env-file", str(env_file),
                     "-f", str(ROOT / "deploy" / "docker-compose.yml"),
                     "-f", str(HERE / "docker-compose.host.yml")]

    # -- Compose and the engine ---------------------------------------------------------
    def compose(self, *args: str, check: bool = True, timeout: float = 300,
                input: bytes | None = None, text: bool = True):
        done = subprocess.run([*self.base, *args], cwd=ROOT, env=self.process_env,
                              capture_output=True, text=text, input=input, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"compose {' '.join(args)} failed ({done.returncode}):\n"
                                 f"{done.stdout}\n{done.stderr}")
        return done

    def wait_healthy(self, timeout: int = 240) -> float:
        """Seconds until every container with a health check is healthy (the same wait
        `make up` does)."""
        started = time.monotonic()
        done = subprocess.run([str(ROOT / "deploy" / "wait-healthy.sh"), PROJECT, str(timeout)],
                              capture_output=True, text=True, timeout=timeout + 30)
        if done.returncode != 0:
            logs = self.compose("logs", "--tail=30", check=False).stdout
            raise AssertionError(f"{done.stderr}\n{logs}")
        return time.monotonic() - started

    def containers(self, service: str) -> list[str]:
        ids = self.compose("ps", "-q", service).stdout.split()
        return [i for i in ids if docker("inspect", "-f", "{{.State.Running}}", i) == "true"]

    def health(self, container: str) -> str:
        return docker("inspect", "-f", "{{.State.Health.Status}}", container)

    def exec(self, container: str, *command: str) -> str:
        return docker("exec", container, *command)

    # -- addresses ----------------------------------------------------------------------
    def url(self, service: str, path: str) -> str:
        return f"http://127.0.0.1:{self.settings[service.upper() + '_PORT']}{path}"

    def routing_urls(self) -> list[str]:
        """Each routing replica listens on a port the kernel chose; its health check
        prints the URL it found."""
        return [self.exec(c, "python", "/opt/ourvoice/healthcheck.py", "routing")
                .removesuffix("/health") for c in self.containers("routing")]

    def principal(self, role: str, office: str | None = None) -> str:
        """A token made the way an operator makes one: the CLI, in a service's container."""
        command = ["ourvoice", "principal", "create", "--role", role, "--days", "1"]
        if office:
            command += ["--office", office]
        return self.exec(self.containers("intake")[0], *command).splitlines()[-1]

    # -- looking inside -----------------------------------------------------------------
    def query(self, statement: str, params=()) -> list[dict]:
        s = self.settings
        with psycopg.connect(host="127.0.0.1", port=s["POSTGRES_PORT"], user=s["POSTGRES_USER"],
                             password=s["POSTGRES_PASSWORD"], dbname="ourvoice",
                             row_factory=dict_row) as conn:
            return conn.execute(statement, params).fetchall()

    def management(self, path: str):
        s = self.settings
        response = requests.get(f"http://127.0.0.1:{s['RABBITMQ_MANAGEMENT_PORT']}/api/{path}",
                                auth=(s["RABBITMQ_USER"], s["RABBITMQ_PASSWORD"]), timeout=10)
        response.raise_for_status()
        return response.json()

    def queue(self, name: str) -> dict:
        return self.management(f"queues/%2F/{quote(name, safe='')}")


def docker(*args: str) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed: {done.stderr}")
    return done.stdout.strip()
