"""The whole system as separate processes, for tests: a database and a RabbitMQ virtual
host of its own, free ports, and the services started with the same command `make run`
uses, so they can be killed and started again."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import kombu
import psycopg
import requests
from psycopg import sql
from psycopg.rows import dict_row

from ourvoice.supervisor import service_command
from shared.config import SERVICES, amqp_uri_as

ROOT = Path(__file__).resolve().parent.parent


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port nothing on 127.0.0.1 holds, never the same one twice in a test run: two
    services given one port, the second could not start. The ports lie below Linux's
    range for outgoing connections (32768 up), so no client socket takes one before its
    server binds it."""
    for _ in range(1000):
        port = random.randint(16000, 24999)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError("no free port between 16000 and 24999")


def wait_until(condition, timeout: float = 30.0, interval: float = 0.05, what: str = ""):
    """Poll until `condition()` is truthy; fail with `what` if it never is."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)


def rabbitmqctl(*args: str, node: str | None = None) -> None:
    node_args = ["-n", node] if node else []
    subprocess.run(["rabbitmqctl", *node_args, *args], check=True, capture_output=True,
                   timeout=60)


class System:
    def __init__(self, name: str, extra_env: dict | None = None, *, pg_port: int = 5432,
                 amqp_port: int | tuple[int, ...] = 5672, rabbitmq_node: str | None = None):
        """By default on the machine's PostgreSQL and RabbitMQ; the fault suite passes the
        ports (and node name) of instances of its own: several ports for the nodes of a
        cluster, in the order the services try them."""
        self.pg_port = pg_port
        self.rabbitmq_node = rabbitmq_node
        self.name = f"{name}_{uuid.uuid4().hex[:8]}"
        self.dbname = f"ourvoice_test_{self.name}"
        self.vhost = f"ourvoice-test-{self.name}"
        self.env = {
            **os.environ,
            "AMQP_URI": self.amqp_uri_over(*([amqp_port] if isinstance(amqp_port, int)
                                             else amqp_port)),
            "POSTGRES_DBNAME": self.dbname,
            "POSTGRES_HOST": "127.0.0.1",
            "POSTGRES_PORT": str(pg_port),
            "POSTGRES_USER": "postgres",
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }
        if rabbitmq_node:
            self.env["RABBITMQ_NODENAME"] = rabbitmq_node
        # Broker users are global to the node: each system makes its own, so that every
        # test runs with the services' real users and permissions.
        self.broker_users = {}
        for service in SERVICES:
            user, password = f"ourvoice-{service}-{self.name}", uuid.uuid4().hex
            self.env[f"{service.upper()}_BROKER_USER"] = user
            self.env[f"{service.upper()}_BROKER_PASSWORD"] = password
            self.broker_users[service] = (user, password)
        self.urls = {}
        for service in SERVICES:
            port = free_port()
            self.env[f"{service.upper()}_ADDRESS"] = f"127.0.0.1:{port}"
            self.urls[service] = f"http://127.0.0.1:{port}"
        self.processes: dict[str, subprocess.Popen] = {}
        self.subscribers: list[str] = []
        self.tokens: dict[tuple, str] = {}
        self.logs = ROOT / ".pytest_cache" / "logs" / self.name
        self.logs.mkdir(parents=True, exist_ok=True)

    # -- infrastructure -------------------------------------------------------------
    def create(self) -> None:
        rabbitmqctl("add_vhost", self.vhost, node=self.rabbitmq_node)
        rabbitmqctl("set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*",
                    node=self.rabbitmq_node)
        done = subprocess.run([str(ROOT / ".venv" / "bin" / "ourvoice"), "setup"], env=self.env,
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise AssertionError(f"ourvoice setup failed ({done.returncode}): "
                                 f"{done.stderr[-3000:] or done.stdout[-3000:]}")

    def destroy(self) -> None:
        self.stop_all()
        rabbitmqctl("delete_vhost", self.vhost, node=self.rabbitmq_node)
        for user in [u for u, _ in self.broker_users.values()] + [
                f"ourvoice-subscriber-{name}" for name in self.subscribers]:
            try:
                rabbitmqctl("delete_user", user, node=self.rabbitmq_node)
            except subprocess.CalledProcessError:
                pass  # a test removed it already
        with psycopg.connect(f"host=127.0.0.1 port={self.pg_port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(self.dbname)))

    def principal(self, role: str, office: str | None = None, *, fresh: bool = False) -> str:
        """A token made the way operators make one: `ourvoice principal create`; the same
        one again for the same role and office unless `fresh`."""
        if not fresh and (role, office) in self.tokens:
            return self.tokens[(role, office)]
        command = [str(ROOT / ".venv" / "bin" / "ourvoice"), "principal", "create", "--role", role]
        if office:
            command += ["--office", office]
        done = subprocess.run(command, env=self.env, check=True, capture_output=True, text=True,
                              timeout=60)
        token = done.stdout.strip().splitlines()[-1]
        if not fresh:
            self.tokens[(role, office)] = token
        return token

    # -- processes ------------------------------------------------------------------
    def start(self, service: str, *, wait: bool = True) -> None:
        log = open(self.logs / f"{service}.log", "ab")
        self.processes[service] = subprocess.Popen(
            service_command(service), env=self.env, cwd=ROOT, stdout=log,
            stderr=subprocess.STDOUT)
        if wait:
            wait_until(lambda: self.healthy(service), timeout=60, what=f"{service} healthy")

    @contextmanager
    def another(self, service: str, name: str, **env: str):
        """One more instance of a service beside the system's, on the same database and
        broker, with settings of its own: the URL it answers at, while the block runs."""
        port = free_port()
        address = f"{service.upper()}_ADDRESS"
        with open(self.logs / f"{name}.log", "ab") as log:
            process = subprocess.Popen(
                service_command(service), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                env={**self.env, address: f"127.0.0.1:{port}", **env})
        url = f"http://127.0.0.1:{port}"

        def healthy():
            assert process.poll() is None, f"{name} exited"
            try:
                return requests.get(url + "/health", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        try:
            wait_until(healthy, timeout=60, what=f"{name} healthy")
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def start_all(self) -> None:
        for service in SERVICES:
            self.start(service, wait=False)
        for service in SERVICES:
            wait_until(lambda s=service: self.healthy(s), timeout=60, what=f"{service} healthy")

    def healthy(self, service: str) -> bool:
        process = self.processes[service]
        if process.poll() is not None:
            raise AssertionError(f"{service} exited with {process.returncode}; see {self.logs}")
        try:
            return requests.get(self.urls[service] + "/health", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def kill(self, service: str) -> None:
        """kill -9: no chance to finish anything."""
        process = self.processes.pop(service)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def stop(self, service: str) -> None:
        process = self.processes.pop(service)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def stop_all(self) -> None:
        for service in list(self.processes):
            self.stop(service)

    # -- looking inside -------------------------------------------------------------
    def query(self, statement: str, params=()) -> list[dict]:
        with psycopg.connect(f"host=127.0.0.1 port={self.pg_port} user=postgres "
                             f"dbname={self.dbname}",
                             row_factory=dict_row) as conn:
            return conn.execute(statement, params).fetchall()

    def scalar(self, statement: str, params=()):
        rows = self.query(statement, params)
        return next(iter(rows[0].values())) if rows else None

    def indexes(self, tables: str) -> set[str]:
        """The definitions of the indexes of the live tables whose names are like `tables`."""
        return {row["indexdef"] for row in self.query(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename LIKE %s",
            (tables,))}

    def settled(self) -> bool:
        """Every public event stored so far that reporting takes has reached it (events
        that stay inside a service are never published; notifications' outcomes and the
        readings of case files reporting does not take)."""
        from shared.topology import TAKES

        public = r"\.(" + "|".join(TAKES["reporting"]) + ")$"
        stored = self.scalar(
            "SELECT " + " + ".join(f"(SELECT count(*) FROM {store}_events WHERE topic ~ %(public)s)"
                                   for store in ("intake", "routing", "notifications")),
            {"public": public})
        return stored == self.scalar("SELECT count(*) FROM reporting_tracking")

    def broker(self) -> kombu.Connection:
        """With the operator's credentials (who may do anything, but whose messages no
        service takes for one of its own)."""
        return kombu.Connection(self.env["AMQP_URI"])

    def amqp_uri_over(self, *ports: int) -> str:
        """The operator's AMQP_URI for the system's virtual host on the nodes listening
        on `ports`, tried in that order."""
        return ";".join(f"amqp://guest:guest@127.0.0.1:{port}/{self.vhost}" for port in ports)

    def amqp_uri_as(self, user: str, password: str) -> str:
        return amqp_uri_as(user, password, self.env["AMQP_URI"])

    def service_amqp_uri(self, service: str) -> str:
        return self.amqp_uri_as(*self.broker_users[service])

    def ourvoice(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([str(ROOT / ".venv" / "bin" / "ourvoice"), *args], env=self.env,
                              check=check, capture_output=True, text=True, timeout=120)

    def add_subscriber(self, name: str, *keys: str, ombudsman: bool = False,
                       checkpoints: bool = False) -> str:
        """`ourvoice subscribers add`, as an operator does; the subscriber's AMQP URI."""
        binds = [arg for key in keys for arg in ("--bind", key)]
        done = self.ourvoice("subscribers", "add", name, *binds,
                             *(["--ombudsman"] if ombudsman else []),
                             *(["--checkpoints"] if checkpoints else []))
        self.subscribers.append(name)
        return self.amqp_uri_as(f"ourvoice-subscriber-{name}",
                                done.stdout.strip().splitlines()[-1])

    def rpc(self, caller: str, service: str, method: str, *args, timeout: float = 30.0):
        """One nameko RPC call as the service `caller` makes it (its broker user and its
        kind of reply queue); a remote error is raised as nameko raises it."""
        return rpc_call(self.service_amqp_uri(caller), caller, service, method, *args,
                        timeout=timeout)

    def publish_raw(self, routing_key: str, body: bytes, *, headers: dict | None = None,
                    content_type: str = "application/json", as_service: str | None = None,
                    amqp_uri: str | None = None, user_id: str | None = None) -> None:
        """Publish to `ourvoice.events` as the operator, or `as_service` (its broker user,
        stamped as its relay stamps it), or as whoever `amqp_uri` logs in, claiming
        `user_id`. Confirmed: a message the broker refuses raises."""
        from shared.topology import EVENTS

        if as_service:
            amqp_uri = self.service_amqp_uri(as_service)
            user_id = self.broker_users[as_service][0]
        with kombu.Connection(amqp_uri or self.env["AMQP_URI"],
                              transport_options={"confirm_publish": True}) as connection:
            producer = kombu.Producer(connection.default_channel, exchange=EVENTS,
                                      auto_declare=False)
            producer.publish(body, routing_key=routing_key, content_type=content_type,
                             content_encoding="utf-8", headers=headers or {}, delivery_mode=2,
                             **({"user_id": user_id} if user_id else {}))

    def url(self, service: str, path: str) -> str:
        return self.urls[service] + path

    def call(self, method: str, service: str, path: str, token: str | None = None,
             **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.request(method, self.url(service, path), headers=headers, timeout=30,
                                **kwargs)


def rpc_call(amqp_uri: str, caller: str, service: str, method: str, *args,
             timeout: float = 30.0):
    """A nameko RPC request published with `user_id` set to the connection's user, its
    reply read from a queue named as nameko names a service's reply queues."""
    from nameko.exceptions import deserialize

    exchange = kombu.Exchange("nameko-rpc", type="topic", durable=True)
    reply_key = str(uuid.uuid4())
    with kombu.Connection(amqp_uri, transport_options={"confirm_publish": True}) as connection:
        channel = connection.channel()
        replies = kombu.Queue(f"rpc.reply-{caller}-{reply_key}", exchange=exchange,
                              routing_key=reply_key, auto_delete=True)(channel)
        replies.declare()
        kombu.Producer(channel, exchange=exchange).publish(
            {"args": list(args), "kwargs": {}}, routing_key=f"{service}.{method}",
            serializer="json", reply_to=reply_key, correlation_id=reply_key,
            user_id=connection.userid, mandatory=True)
        deadline = time.monotonic() + timeout
        while (message := replies.get(no_ack=True)) is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"no reply to {service}.{method} in {timeout}s")
            time.sleep(0.02)
        body = json.loads(message.body)
        if body.get("error"):
            raise deserialize(body["error"])
        return body["result"]


def complaint(**overrides) -> dict:
    body = {
        "type": "complaint",
        "category": "water-supply",
        "description": "ទឹកស្អាតមិនហូរអស់រយៈពេលបីថ្ងៃហើយ។",
        "location": {"commune": "120101"},
        "language": "km",
        "complainant": {"anonymous": True, "gender": "female"},
    }
    body.update(overrides)
    return body


def submit(system: System, body: dict | None = None, **headers) -> dict:
    response = requests.post(system.url("intake", "/v1/cases"), json=body or complaint(),
                             headers=headers, timeout=30)
    assert response.status_code == 201, response.text
    return response.json()


def dumps(value) -> bytes:
    return json.dumps(value).encode()


def citizen_view(system: System, case: dict) -> dict:
    """The citizen's own view of their case, with the token they got at submission."""
    response = system.call("GET", "intake", f"/v1/cases/{case['tracking_code']}",
                           case["citizen_token"])
    assert response.status_code == 200, response.text
    return response.json()


def act(system: System, case: dict, action: str, token: str, body: dict | None = None,
        status: int = 200) -> dict:
    """An office's command on a case (acknowledge, request-info, resolve, ...)."""
    response = system.call("POST", "routing", f"/v1/cases/{case['case_id']}/{action}", token,
                           json=body or {})
    assert response.status_code == status, response.text
    return response.json()
