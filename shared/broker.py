"""The broker's users: who may do what on the bus.

Each service connects as a user of its own (see shared/config.py), allowed to declare and
consume its own queues and to publish only what it must: its events to `ourvoice.events`
(the services that keep a store) and its RPC requests and replies. An office system's
subscriber is a user that may only consume one queue of its own, which the operator binds
to `ourvoice.events` for its area: it can publish nothing, declare nothing, call nothing.

`ourvoice setup` and `ourvoice subscribers` manage these users with the operator's
credentials in AMQP_URI: through `rabbitmqctl` on the broker's own machine, or through the
management HTTP API when RABBITMQ_MANAGEMENT_URL is set (as in Compose)."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import urllib.parse
import urllib.request
from dataclasses import dataclass

from shared import topology
from shared.config import SERVICES, broker_nodes, broker_password, broker_user
from shared.events import EVENT_TYPES
from shared.settings import settings

NOTHING = "^$"
SUBSCRIBER_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


@dataclass(frozen=True)
class Permissions:
    """RabbitMQ's three regular expressions on resource names in one virtual host:
    configure (declare, delete), write (publish to an exchange, bind a queue), read
    (consume a queue, bind from an exchange)."""

    configure: str
    write: str
    read: str


def _names(*names: str) -> str:
    return "^(" + "|".join(names) + ")$"


def service_permissions(service: str) -> Permissions:
    s = re.escape(service)
    # nameko's resources: the shared RPC exchange, the service's request queue and the
    # reply queues its proxies make (rpc.reply-<service>-<uuid>).
    rpc = ("nameko-rpc", f"rpc-{s}", rf"rpc\.reply-{s}-[0-9a-f-]+")
    own = (rf"ourvoice\.{s}",)
    events = re.escape(topology.EVENTS.name)
    publishes = (events,) if service in topology.PUBLISHERS else ()
    if service == topology.CHECKPOINTER:
        publishes += (re.escape(topology.AUDIT.name),)
    return Permissions(
        # The events exchange is declared again by each consumer of it (kombu declares a
        # binding's exchange); declaring it changes nothing.
        configure=_names(*sorted({events, *publishes}), *own, *rpc),
        # A queue that dead-letters names the dead-letter exchange: RabbitMQ asks for
        # write on it when the queue is declared.
        write=_names(*publishes, re.escape(topology.DEAD_LETTERS.name), *own, *rpc),
        read=_names(events, *own, *rpc),
    )


SUBSCRIBER_PREFIX = "ourvoice-subscriber-"


def subscriber_user(name: str) -> str:
    return SUBSCRIBER_PREFIX + name


def subscriber_permissions(name: str) -> Permissions:
    return Permissions(NOTHING, NOTHING, _names(re.escape(topology.subscriber_queue_name(name))))


# -- binding keys an office system may ask for ---------------------------------------------

def binding_key_problem(key: str, *, ombudsman: bool) -> str | None:
    """Why `key` may not bind a subscriber's queue, or None. Area keys have three words,
    `<EventType or *>.<province>.<district or *>`; a sensitive case's events have four,
    `<EventType>.sensitive.<province>.<district>`, and only an ombudsman's subscriber may
    bind those. `#` would take every event, sensitive ones too, and no one gets it."""
    words = key.split(".")
    if "#" in words or "#" in key:
        return "'#' would match every event, sensitive cases' too; bind an area"
    if len(words) == 4 and words[1] == "sensitive":
        if not ombudsman:
            return "only an ombudsman's subscriber (--ombudsman) receives sensitive cases"
        event_type, _, province, district = words
    elif len(words) == 3:
        event_type, province, district = words
    else:
        return ("an area key has three words, <EventType or *>.<province>.<district or *> "
                "(e.g. *.12.1201)")
    if event_type != "*" and event_type not in EVENT_TYPES:
        return f"{event_type!r} is no event type; one of {', '.join(EVENT_TYPES)} or *"
    if not re.fullmatch(r"[0-9]{2}", province):
        return f"{province!r} is no province code (two digits, e.g. 12)"
    if district != "*" and not (re.fullmatch(r"[0-9]{4}", district)
                                and district.startswith(province)):
        return f"{district!r} is no district of province {province} (e.g. {province}01) nor *"
    return None


# -- the two ways to manage users ----------------------------------------------------------

def admin() -> Rabbitmqctl | ManagementApi:
    url = settings().rabbitmq_management_url
    return ManagementApi(url) if url else Rabbitmqctl()


def _operator_url() -> str:
    """AMQP_URI's first node: every node of a cluster has the same login and vhost."""
    return broker_nodes(settings().amqp_uri)[0]


def _vhost() -> str:
    path = urllib.parse.urlsplit(_operator_url()).path
    return urllib.parse.unquote(path[1:]) if len(path) > 1 else "/"


class Rabbitmqctl:
    """On the broker's machine, with the rights to run `rabbitmqctl` (RABBITMQ_NODENAME
    names another node than the default)."""

    def __init__(self):
        self.vhost = _vhost()
        node = settings().rabbitmq_nodename
        self.command = ["rabbitmqctl", *(["-n", node] if node else [])]

    def _run(self, *args: str) -> str:
        done = subprocess.run([*self.command, "-q", *args], capture_output=True, text=True,
                              timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {args[0]}: {(done.stderr or done.stdout).strip()}")
        return done.stdout

    def users(self) -> set[str]:
        return {u["user"] for u in json.loads(self._run("list_users", "--formatter", "json"))}

    def put_user(self, user: str, password: str) -> None:
        if user in self.users():
            self._run("change_password", user, password)
        else:
            self._run("add_user", user, password)

    def set_permissions(self, user: str, permissions: Permissions) -> None:
        self._run("set_permissions", "-p", self.vhost, user, permissions.configure,
                  permissions.write, permissions.read)

    def permissions(self) -> dict[str, Permissions]:
        rows = json.loads(self._run("list_permissions", "-p", self.vhost, "--formatter", "json"))
        return {r["user"]: Permissions(r["configure"], r["write"], r["read"]) for r in rows}

    def bindings(self, queue: str) -> list[str]:
        rows = json.loads(self._run("list_bindings", "-p", self.vhost, "source_name",
                                    "destination_name", "routing_key", "--formatter", "json"))
        return sorted(r["routing_key"] for r in rows
                      if r["destination_name"] == queue and r["source_name"])

    def delete_user(self, user: str) -> None:
        self._run("delete_user", user)


class ManagementApi:
    """Through RabbitMQ's management HTTP API, with the operator's credentials."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")
        self.vhost = _vhost()
        parts = urllib.parse.urlsplit(_operator_url())
        login = f"{urllib.parse.unquote(parts.username or '')}:" \
                f"{urllib.parse.unquote(parts.password or '')}"
        self.auth = "Basic " + base64.b64encode(login.encode()).decode()

    def _call(self, method: str, *path: str, body: dict | None = None):
        url = self.url + "/api/" + "/".join(urllib.parse.quote(p, safe="") for p in path)
        request = urllib.request.Request(
            url, method=method, data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": self.auth, "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read()
        return json.loads(text) if text else None

    def users(self) -> set[str]:
        return {u["name"] for u in self._call("GET", "users")}

    def put_user(self, user: str, password: str) -> None:
        self._call("PUT", "users", user, body={"password": password, "tags": ""})

    def set_permissions(self, user: str, permissions: Permissions) -> None:
        self._call("PUT", "permissions", self.vhost, user, body={
            "configure": permissions.configure, "write": permissions.write,
            "read": permissions.read})

    def permissions(self) -> dict[str, Permissions]:
        return {r["user"]: Permissions(r["configure"], r["write"], r["read"])
                for r in self._call("GET", "vhosts", self.vhost, "permissions")}

    def bindings(self, queue: str) -> list[str]:
        rows = self._call("GET", "queues", self.vhost, queue, "bindings")
        return sorted(r["routing_key"] for r in rows if r["source"])

    def delete_user(self, user: str) -> None:
        self._call("DELETE", "users", user)


def put_service_users() -> None:
    """Create (or update the password and permissions of) every service's user."""
    broker = admin()
    for service in SERVICES:
        broker.put_user(broker_user(service), broker_password(service))
        broker.set_permissions(broker_user(service), service_permissions(service))
