"""The whole system as operators run it: deploy/docker-compose.yml on a real Docker engine,
with images built here. A complaint goes from submission to its office's queue, the report
and the event stores; routing restarted mid-way loses nothing; three routing instances
share the work and handle no case twice."""

from __future__ import annotations

import base64
import json
import re
import secrets
import subprocess
import threading
import time

import requests
import yaml

from ourvoice.supervisor import service_command
from shared.config import DEFAULTS
from shared.topology import dead_letter_queue_name, queue_name
from tests.deploy.stack import (
    FIGURES,
    ROOT,
    SERVICES,
    Stack,
    compose_command,
    docker,
    wait_until,
)

OFFICE = "commune-120101"  # where a water-supply complaint in commune 120101 goes


def complaint(n: int) -> dict:
    return {
        "type": "complaint",
        "category": "water-supply",
        "description": f"ទឹកស្អាតមិនហូរអស់រយៈពេលបីថ្ងៃហើយ ({n})",
        "location": {"commune": "120101"},
        "language": "km",
        "complainant": {"anonymous": True, "gender": "female"},
    }


class Cases:
    """Every case submitted during the run, to check each one's fate at the end."""

    def __init__(self, stack: Stack):
        self.stack = stack
        self.submitted: list[dict] = []
        self.lock = threading.Lock()

    def submit(self, count: int, pause: float = 0.0) -> list[dict]:
        made = []
        for _ in range(count):
            n = len(self.submitted) + len(made)
            response = requests.post(self.stack.url("intake", "/v1/cases"), json=complaint(n),
                                     timeout=30)
            assert response.status_code == 201, response.text
            made.append(response.json())
            time.sleep(pause)
        with self.lock:
            self.submitted.extend(made)
        return made


def routed(stack: Stack, case_ids: list[str]) -> dict[str, int]:
    """How many CaseRouted events routing's store holds for each case: exactly one each
    is the goal."""
    rows = stack.query(
        "SELECT originator_id::text AS case_id, count(*) AS n FROM routing_events"
        " WHERE topic LIKE %s AND originator_id = ANY(%s::uuid[]) GROUP BY originator_id",
        ("%Routed%", case_ids))
    return {row["case_id"]: row["n"] for row in rows}


def every_case_routed(stack: Stack, cases: list[dict]) -> bool:
    return len(routed(stack, [c["case_id"] for c in cases])) == len(cases)


def settled(stack: Stack) -> bool:
    """Every relay and projection has reached the end of its store, and no service has a
    message waiting or in hand: every effect of every stored event is committed."""
    stores = {row["t"] for row in stack.query(
        "SELECT tablename AS t FROM pg_tables WHERE tablename LIKE %s", ("%\\_events",))}
    for follower in stack.query("SELECT name, position FROM ourvoice_followers"):
        # relay:routing, projection:routing.office_queue, projection:intake-cases
        store = re.split(r"[:.-]", follower["name"])[1] + "_events"
        if store not in stores:
            continue
        end = stack.query(f"SELECT coalesce(max(notification_id), 0) AS n FROM {store}")
        if follower["position"] < end[0]["n"]:
            return False
    # The broker's own count, not the management statistics, which lag by seconds.
    found = stack.compose("exec", "-T", "rabbitmq", "rabbitmqctl", "-q", "list_queues",
                          "--formatter=json", "name", "messages").stdout
    waiting = {q["name"]: q["messages"] for q in json.loads(found)}
    return all(waiting.get(queue_name(service), 0) == 0 for service in SERVICES)


# -- the image ------------------------------------------------------------------------------
def test_the_image_runs_as_a_user_without_compilers_on_the_given_base(stack):
    image = stack.settings["OURVOICE_IMAGE"]
    assert docker("image", "inspect", "-f", "{{.Config.User}}", image) == "ourvoice"
    found = docker("run", "--rm", "--network", "none", "--entrypoint", "sh", image, "-c",
                   "id -u; for c in gcc cc c++ g++ clang make; do command -v $c; done; true")
    uid, *compilers = found.splitlines()
    assert uid != "0"
    assert compilers == [], f"compilers in the final image: {compilers}"
    # Built FROM the base image given as BASE_IMAGE: its layers come first.
    base = docker("image", "inspect", "-f", "{{json .RootFS.Layers}}", stack.settings["PYTHON_IMAGE"])
    layers = docker("image", "inspect", "-f", "{{json .RootFS.Layers}}", image)
    assert layers.startswith(base.rstrip("]"))
    size = int(docker("image", "inspect", "-f", "{{.Size}}", image))
    FIGURES["image size"] = f"{size / 1e6:.0f} MB"


def test_each_service_runs_the_command_make_run_uses(stack):
    for service in SERVICES:
        container = stack.containers(service)[0]
        command = json.loads(docker("inspect", "-f", "{{json .Config.Cmd}}", container))
        assert command == ["python", "-m", f"services.{service}"]
        assert service_command(service)[1:] == ["-m", f"services.{service}"]


# -- start-up and configuration -------------------------------------------------------------
def test_every_service_is_healthy_after_setup_ran_once(stack):
    for service in SERVICES:
        (container,) = stack.containers(service)
        assert stack.health(container) == "healthy"
    setup = stack.compose("ps", "-q", "setup").stdout.split()
    assert setup and docker("inspect", "-f", "{{.State.ExitCode}}", setup[0]) == "0"
    for service in ("intake", "notifications", "reporting"):
        response = requests.get(stack.url(service, "/health"), timeout=5)
        assert response.status_code == 200 and response.json() == {"status": "ok", "refused_events": 0}
        assert requests.get(stack.url(service, "/openapi.json"), timeout=5).status_code == 200
    # Files the services read besides code made it into the image.
    dashboard = requests.get(stack.url("reporting", "/dashboard"), timeout=5)
    assert dashboard.status_code == 200 and "<html" in dashboard.text.lower()
    categories = requests.get(stack.url("intake", "/v1/categories"), timeout=5).json()
    assert "water-supply" in {category["code"] for category in categories}


def test_the_broker_is_rabbitmq_4_with_its_prometheus_metrics(stack):
    version = stack.management("overview")["rabbitmq_version"]
    assert version.startswith("4."), version
    FIGURES["RabbitMQ"] = version
    metrics = requests.get(f"http://127.0.0.1:{stack.settings['RABBITMQ_PROMETHEUS_PORT']}"
                           "/metrics/per-object", timeout=10)
    assert metrics.status_code == 200
    # A queue of the services', by name, with its depth.
    assert re.search(r'^rabbitmq_queue_messages\{.*queue="ourvoice\.notifications"', metrics.text,
                     re.M), metrics.text[:2000]


def with_settings(stack: Stack, path, **changes) -> Stack:
    """The same stack, configured by a copy of its settings with some changed (None
    removes one)."""
    settings = {**stack.settings, **changes}
    path.write_text("".join(f"{k}={v}\n" for k, v in settings.items() if v is not None))
    return Stack(path)


def test_production_refuses_development_keys(stack, tmp_path):
    keys = ("OURVOICE_SECRET", "OURVOICE_MASTER_KEY")
    misconfigured = with_settings(stack, tmp_path / "weak.env",
                                  **{key: DEFAULTS[key] for key in keys})

    def refused() -> bool:
        logs = misconfigured.compose("logs", "reporting").stdout
        return all(key in logs for key in keys)

    try:
        misconfigured.compose("up", "-d", "--no-deps", "reporting")
        wait_until(refused, 60, "reporting to refuse the development keys")
        (container,) = misconfigured.compose("ps", "-q", "reporting").stdout.split()
        assert stack.health(container) != "healthy"
    finally:
        stack.compose("up", "-d", "--no-deps", "reporting")
        stack.wait_healthy()


def test_compose_will_not_start_without_the_secrets(stack, tmp_path):
    checked = with_settings(stack, tmp_path / "unset.env", OURVOICE_SECRET=None).compose(
        "config", check=False)
    assert checked.returncode != 0
    assert "OURVOICE_SECRET" in checked.stderr


def test_the_operators_files_make_a_valid_stack(stack, tmp_path):
    """deploy/.env.example with its secrets filled in, and the ports the host publishes."""
    example = (ROOT / "deploy" / ".env.example").read_text()
    filled = {"OURVOICE_SECRET": "2026a:" + secrets.token_hex(32),
              "OURVOICE_MASTER_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
              "OURVOICE_CHECKPOINT_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
              "RABBITMQ_PASSWORD": "r" * 48, "POSTGRES_PASSWORD": "p" * 48,
              **{f"{s.upper()}_BROKER_PASSWORD": s[0] * 48 for s in SERVICES}}
    for name, value in filled.items():
        example = example.replace(f"\n{name}=\n", f"\n{name}={value}\n")
    env_file = tmp_path / ".env"
    env_file.write_text(example)
    deploy = ROOT / "deploy"
    done = subprocess.run(
        [*compose_command(), "-p", "ourvoice", "--env-file", str(env_file),
         "-f", str(deploy / "docker-compose.yml"), "-f", str(deploy / "docker-compose.override.yml"),
         "config"], capture_output=True, text=True, env=stack.process_env, timeout=60)
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(done.stdout)["services"]
    assert set(config) == {"rabbitmq", "postgres", "setup", *SERVICES}
    assert config["rabbitmq"]["image"].startswith("rabbitmq:4.")
    assert config["rabbitmq"]["image"].endswith("-management")
    # Where email and SMS go reaches the service that sends them.
    assert {"SMTP_HOST", "SMS_GATEWAY_URL"} <= set(config["notifications"]["environment"])
    assert config["postgres"]["image"].startswith("postgres:")
    for service in SERVICES:
        settings = config[service]
        assert settings["environment"]["OURVOICE_ENV"] == "production"
        assert settings["depends_on"]["setup"]["condition"] == "service_completed_successfully"
        assert settings["restart"] == "unless-stopped" and "healthcheck" in settings
        assert all(port.startswith("127.0.0.1:") for port in published(settings))
    (routing,) = published(config["routing"])
    assert routing.startswith("127.0.0.1:8002-8009:8002"), \
        "routing publishes a range, one port for each replica"


def published(settings: dict) -> list[str]:
    """Ports as address:host-port(s):container-port, whichever form Compose prints."""
    return [port if isinstance(port, str) else
            f"{port.get('host_ip', '')}:{port['published']}:{port['target']}"
            for port in settings.get("ports", [])]


# -- a complaint through the stack, with routing restarted on the way ------------------------
def test_submit_route_queue_report_audit_with_routing_restarted(stack):
    cases = Cases(stack)
    cases.submit(15)

    # Routing restarts while complaints keep arriving.
    arriving = threading.Thread(target=cases.submit, args=(30, 0.05))
    arriving.start()
    stack.compose("restart", "routing")
    arriving.join(timeout=120)
    assert not arriving.is_alive()
    stack.wait_healthy()
    cases.submit(15)
    assert len(cases.submitted) == 60

    wait_until(lambda: every_case_routed(stack, cases.submitted), 120, "every case routed")
    counts = routed(stack, [c["case_id"] for c in cases.submitted])
    assert set(counts.values()) == {1}, "a case was routed more than once"

    # The citizen sees where the case went.
    first = cases.submitted[0]

    def citizen_view() -> dict:
        response = requests.get(stack.url("intake", f"/v1/cases/{first['tracking_code']}"),
                                headers={"Authorization": f"Bearer {first['citizen_token']}"},
                                timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    view = wait_until(lambda: citizen_view()["office"], 30, "the citizen's view to show the office")
    assert view["id"] == OFFICE

    # The office's staff find every case in their queue.
    token = stack.principal("staff", OFFICE)
    (routing_url,) = stack.routing_urls()

    def queued() -> set[str]:
        response = requests.get(f"{routing_url}/v1/offices/{OFFICE}/queue?limit=500",
                                headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert response.status_code == 200, response.text
        return {c["tracking_code"] for c in response.json()["cases"]}

    codes = {c["tracking_code"] for c in cases.submitted}
    wait_until(lambda: codes <= queued(), 60, "every case in the office's queue")

    # The report counts each case once (an auditor sees the figures whole).
    auditor = {"Authorization": f"Bearer {stack.principal('auditor')}"}
    wait_until(lambda: settled(stack), 60, "a settled system")
    summary = requests.get(stack.url("reporting", "/v1/reports/summary"), headers=auditor,
                           timeout=10).json()
    assert summary["total"] == len(cases.submitted)

    # Audit: each case's history, from every store, has it submitted once and routed once,
    # and the stores' hash chains hold.
    for case in cases.submitted[::6]:
        response = requests.get(stack.url("reporting", f"/v1/audit/cases/{case['tracking_code']}"),
                                headers=auditor, timeout=10)
        assert response.status_code == 200, response.text
        kinds = [event["event_type"] for event in response.json()["events"]]
        assert kinds.count("CaseSubmitted") == 1 and kinds.count("CaseRouted") == 1, kinds
    stack.compose("exec", "-T", "reporting", "ourvoice", "audit", "verify")
    for service in SERVICES:
        assert stack.queue(dead_letter_queue_name(service))["messages"] == 0


# -- scaling out --------------------------------------------------------------------------
def test_three_routing_instances_share_the_work_and_route_each_case_once(stack):
    stack.compose("up", "-d", "--no-build", "--scale", "routing=3")
    stack.wait_healthy()
    replicas = stack.containers("routing")
    assert len(replicas) == 3
    assert len(set(stack.routing_urls())) == 3, "each replica listens on a port of its own"
    queue = queue_name("routing")
    wait_until(lambda: stack.queue(queue)["consumers"] == 3, 60, "three consumers on routing's queue")
    channels = [c["channel_details"]["name"] for c in stack.queue(queue)["consumer_details"]]
    assert len(set(channels)) == 3

    def acked(channel: str) -> int:
        stats = stack.management(f"channels/{requests.utils.quote(channel, safe='')}")
        return stats.get("message_stats", {}).get("ack", 0)

    before = {channel: acked(channel) for channel in channels}
    cases = Cases(stack)
    cases.submit(90)
    wait_until(lambda: every_case_routed(stack, cases.submitted), 120, "every case routed")
    counts = routed(stack, [c["case_id"] for c in cases.submitted])
    assert set(counts.values()) == {1}, "a case was routed more than once"

    # RabbitMQ's statistics lag by a few seconds; each instance must have taken a share.
    def shares() -> dict[str, int]:
        return {channel: acked(channel) - before[channel] for channel in channels}

    wait_until(lambda: sum(shares().values()) >= len(cases.submitted), 60,
               "RabbitMQ's statistics to count every delivery")
    assert all(share > 0 for share in shares().values()), shares()
    FIGURES["messages handled per routing instance"] = ", ".join(
        str(share) for share in sorted(shares().values()))

    stack.compose("up", "-d", "--no-build", "--scale", "routing=1")


# -- backup and restore, as the README's runbook says --------------------------------------
def test_a_restored_backup_carries_on_from_where_it_was_taken(stack):
    cases = Cases(stack)
    kept = cases.submit(5)
    wait_until(lambda: every_case_routed(stack, kept) and settled(stack), 60, "a settled system")
    backup = stack.compose("exec", "-T", "postgres", "pg_dump", "-U", "ourvoice", "-Fc",
                           "ourvoice", text=False).stdout
    assert backup.startswith(b"PGDMP")
    lost = cases.submit(3)
    wait_until(lambda: every_case_routed(stack, lost), 60, "the cases after the backup routed")

    stack.compose("stop", *SERVICES)
    stack.compose("exec", "-T", "postgres", "dropdb", "-U", "ourvoice", "--force", "ourvoice")
    stack.compose("exec", "-T", "postgres", "createdb", "-U", "ourvoice", "ourvoice")
    stack.compose("exec", "-T", "postgres", "pg_restore", "-U", "ourvoice", "-d", "ourvoice",
                  "--exit-on-error", input=backup, text=False)
    for service in SERVICES:
        stack.compose("exec", "-T", "rabbitmq", "rabbitmqctl", "-q", "purge_queue",
                      queue_name(service))
    stack.compose("up", "-d", "--no-build")
    stack.wait_healthy()

    submitted = {row["case_id"] for row in stack.query(
        "SELECT originator_id::text AS case_id FROM intake_events WHERE topic LIKE %s",
        ("%Submitted%",))}
    assert {c["case_id"] for c in kept} <= submitted
    assert not {c["case_id"] for c in lost} & submitted, "the backup predates these"

    # New cases take the positions the lost ones had; they must still be handled.
    after = cases.submit(5)
    wait_until(lambda: every_case_routed(stack, after), 60, "the cases after the restore routed")
    assert set(routed(stack, [c["case_id"] for c in after]).values()) == {1}
    wait_until(lambda: settled(stack), 60, "a settled system")
    summary = requests.get(stack.url("reporting", "/v1/reports/summary"), timeout=10,
                           headers={"Authorization": f"Bearer {stack.principal('auditor')}"})
    assert summary.json()["total"] == len(submitted) + len(after)
    stack.compose("exec", "-T", "reporting", "ourvoice", "audit", "verify")


# -- rebuilding read models and checking the stores, as the README's runbook says ----------
def rows(stack: Stack, table: str) -> list[dict]:
    return stack.query(f"SELECT * FROM {table} ORDER BY case_id")


def test_read_models_rebuilt_from_the_events_give_the_same_rows(stack):
    Cases(stack).submit(5)
    wait_until(lambda: settled(stack), 60, "a settled system")
    queue_before, counts_before = rows(stack, "routing_office_queue"), rows(stack, "reporting_cases")
    assert queue_before and counts_before

    check = stack.compose("exec", "-T", "routing", "ourvoice", "projections", "rebuild", "--all",
                          "--check").stdout
    assert "routing.office_queue" in check and "reporting" in check
    stack.compose("exec", "-T", "routing", "ourvoice", "projections", "rebuild", "--all")
    assert rows(stack, "routing_office_queue") == queue_before
    assert rows(stack, "reporting_cases") == counts_before
    stack.compose("exec", "-T", "routing", "ourvoice", "audit", "verify")
