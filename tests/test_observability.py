"""What operators watch, through the real services: `/metrics` moving as a case flows,
one case and one request followed through the JSON log lines of all four services,
nothing secret in any line, and the health probes (live, ready, and /health, which
opens no connection to the broker however often it is asked); with
OURVOICE_METRICS=off, 404 at `/metrics`."""

import json
import re
import socket
import subprocess
import threading
import uuid

import pytest
import requests

from shared.config import SERVICES
from tests.receivers import HttpReceiver, Mailbox
from tests.system import complaint, submit, wait_until

pytestmark = pytest.mark.e2e

MAILBOX = Mailbox()
SMS = HttpReceiver()
SYSTEM_ENV = {
    "OURVOICE_LOG_FORMAT": "json",
    "SMTP_PORT": str(MAILBOX.port),
    "SMS_GATEWAY_URL": SMS.url("/sms"),
    "SMS_GATEWAY_USER": "ourvoice",
    "SMS_GATEWAY_PASSWORD": "gateway-password",
}
PHONE, E164 = "012 555 014", "+85512555014"
EMAIL = "citizen14@example.org"


@pytest.fixture(scope="module", autouse=True)
def receivers():
    MAILBOX.start()
    SMS.start()
    try:
        yield
    finally:
        MAILBOX.stop()
        SMS.stop()


SAMPLE = re.compile(r"^(\w+)(?:\{(.*)\})? (\S+)$")


def scrape(system, service: str) -> dict[tuple, float]:
    """A service's /metrics as {(name, (label, value), ...): value}."""
    answer = requests.get(system.url(service, "/metrics"), timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for line in answer.text.splitlines():
        if line.startswith("#") or not line:
            continue
        name, labels, value = SAMPLE.match(line).groups()
        pairs = tuple(sorted(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels or "")))
        samples[(name, *pairs)] = float(value)
    return samples


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, *sorted(labels.items())), 0.0)


def log_lines(system, service: str) -> list[dict]:
    """The service's JSON lines (a line that is not JSON is something written past the
    logging set-up, such as Python's own warnings at start)."""
    lines = []
    for text in (system.logs / f"{service}.log").read_text(errors="replace").splitlines():
        if text.startswith("{"):
            lines.append(json.loads(text))
    return lines


def all_log_text(system) -> str:
    return "\n".join(path.read_text(errors="replace") for path in system.logs.glob("*.log"))


@pytest.fixture(scope="module")
def flowed(system):
    """One case submitted with a request id of the caller's, and what the metrics said
    before it, once it was routed, told and counted."""
    before = {service: scrape(system, service) for service in SERVICES}
    request_id = f"req-{uuid.uuid4().hex[:12]}"
    person = {"anonymous": False, "name": "Sok Dara", "gender": "female", "phone": PHONE,
              "email": EMAIL}
    case = submit(system, complaint(complainant=person), **{"X-Request-Id": request_id})
    wait_until(lambda: system.scalar(
        "SELECT count(*) FROM notifications_outbox WHERE tracking_code = %s AND state = 'sent'",
        (case["tracking_code"],)), timeout=60, what="a delivery sent")
    wait_until(system.settled, timeout=60, what="every event counted by reporting")
    return {"case": case, "request_id": request_id, "before": before}


def test_a_request_is_counted_under_its_route_template_with_its_status(system, flowed):
    case = flowed["case"]
    read = requests.get(system.url("intake", f"/v1/cases/{case['tracking_code']}"),
                        headers={"Authorization": f"Bearer {case['citizen_token']}"}, timeout=10)
    assert read.status_code == 200
    after = scrape(system, "intake")
    before = flowed["before"]["intake"]
    name = "ourvoice_http_requests_total"
    assert value(after, name, endpoint="/v1/cases", method="POST", status="201") == \
        value(before, name, endpoint="/v1/cases", method="POST", status="201") + 1
    assert value(after, name, endpoint="/v1/cases/{tracking_code}", method="GET",
                 status="200") >= 1
    assert value(after, "ourvoice_http_request_seconds_count", endpoint="/v1/cases",
                 method="POST") >= 1
    # No label carries the case: not its tracking code, id, nor anything of the person.
    text = requests.get(system.url("intake", "/metrics"), timeout=10).text
    for secret in (case["tracking_code"], case["case_id"], case["citizen_token"], PHONE, E164,
                   EMAIL):
        assert secret not in text


def test_events_consumed_are_counted_by_type_with_their_processing_time(system, flowed):
    for service, event_type in (("routing", "CaseSubmitted"), ("notifications", "CaseRouted"),
                                ("reporting", "CaseRouted"), ("intake", "CaseRouted")):
        def settled(service=service, event_type=event_type, before=flowed["before"][service],
                    name="ourvoice_events_consumed_total", queue=f"ourvoice.{service}"):
            # Each service takes the case's events in its own time: wait for this one's.
            after = scrape(system, service)
            counted = value(after, name, event_type=event_type, outcome="handled") > \
                value(before, name, event_type=event_type, outcome="handled")
            return counted and value(after, "ourvoice_consumer_unsettled_messages",
                                     queue=queue) == 0 and after

        after = wait_until(settled, timeout=30, interval=0.5,
                           what=f"{service} counted {event_type}")
        assert value(after, "ourvoice_event_processing_seconds_count",
                     event_type=event_type) >= 1, service


def test_a_delivery_is_counted_by_channel_and_outcome(system, flowed):
    after, before = scrape(system, "notifications"), flowed["before"]["notifications"]
    name = "ourvoice_deliveries_total"
    sent = sum(value(after, name, channel=channel, outcome="sent") -
               value(before, name, channel=channel, outcome="sent") for channel in ("email", "sms"))
    assert sent >= 1


def test_relay_lag_is_back_to_zero_and_followers_show_their_positions(system, flowed):
    for service in ("intake", "routing", "notifications"):
        wait_until(lambda s=service: scrape(system, s).get(
            ("ourvoice_relay_lag_events", ("store", s))) == 0,
            timeout=30, what=f"{service}'s relay caught up")
        after = scrape(system, service)
        assert value(after, "ourvoice_follower_position", follower=f"relay:{service}") >= 1


def test_open_cases_are_counted_by_office_level(system, flowed):
    after = wait_until(lambda: (s := scrape(system, "routing")) and value(
        s, "ourvoice_open_cases", office_kind="commune", level="commune") >= 1 and s,
        timeout=20, what="the open case counted")
    assert value(after, "ourvoice_open_cases", office_kind="national-ombudsman",
                 level="national") == 0


def test_one_case_is_followed_through_the_json_logs_of_all_four_services(system, flowed):
    case, request_id = flowed["case"], flowed["request_id"]
    lines = {service: log_lines(system, service) for service in SERVICES}
    for service, found in lines.items():
        assert found, f"{service} wrote no JSON lines"
        for line in found:
            assert {"time", "level", "service", "logger", "message"} <= set(line), line
            assert line["service"] == service
    # The submission's request id, taken from the caller, on intake's lines of it.
    assert any(line.get("request_id") == request_id for line in lines["intake"])
    for service in SERVICES:
        of_case = [line for line in lines[service] if line.get("case_id") == case["case_id"]]
        assert of_case, f"{service} has no line naming the case"
        assert all(line.get("event_id") for line in of_case)


def test_the_request_id_is_returned_and_carried_by_rpc_into_the_next_service(system, flowed):
    given = f"audit-{uuid.uuid4().hex[:8]}"
    answer = requests.get(system.url("reporting", "/v1/reports/summary"),
                          headers={"X-Request-Id": given}, timeout=30)
    assert answer.status_code == 200
    assert answer.headers["X-Request-Id"] == given
    # Reporting asks intake for its gender counts: intake's line of that call has the id.
    wait_until(lambda: any(line.get("request_id") == given and "gender_counts" in line["message"]
                           for line in log_lines(system, "intake")),
               timeout=10, what="intake's line of the RPC call with the request id")
    # An id that could forge a line or a header is replaced by one of ours.
    made = requests.get(system.url("reporting", "/health/live"),
                        headers={"X-Request-Id": "bad id\twith spaces"}, timeout=10)
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["X-Request-Id"])


def test_no_token_query_string_or_personal_data_reaches_a_log_line(system, flowed):
    case = flowed["case"]
    token = case["citizen_token"]
    # A token in the query string (refused, but logged as every request is) and in a header.
    requests.get(system.url("intake", f"/v1/cases/{case['tracking_code']}?token={token}"),
                 timeout=10)
    requests.get(system.url("routing", "/v1/offices/commune-120101/queue"),
                 headers={"Authorization": f"Bearer {token}"}, timeout=10)
    staff = system.principal("staff", "commune-120101")
    requests.get(system.url("routing", "/v1/offices/commune-120101/queue?secret=" + staff),
                 headers={"Authorization": f"Bearer {staff}"}, timeout=10)
    wait_until(lambda: "?token=" in all_log_text(system), timeout=10, what="the access line")
    text = all_log_text(system)
    for secret in (token, staff, PHONE, E164, EMAIL, "Sok Dara"):
        assert secret not in text


class Unplug:
    """A TCP forwarder to PostgreSQL that can be pulled out: afterwards its port is
    closed and every connection through it is cut."""

    def __init__(self, port: int):
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            self.sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def pull(self):
        # Shut first: a plain close leaves the thread blocked in accept() accepting.
        self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        for end in self.sockets:
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def test_live_and_ready_answer_and_ready_names_an_unreachable_database(system):
    for service in SERVICES:
        live = requests.get(system.url(service, "/health/live"), timeout=5)
        assert live.status_code == 200, live.text
        assert live.json() == {"status": "alive", "service": service,
                               "pid": system.processes[service].pid}
        ready = requests.get(system.url(service, "/health/ready"), timeout=5)
        assert ready.status_code == 200, ready.text
    assert requests.get(system.url("intake", "/health/ready"), timeout=5).json()[
        "relay_lag"] == {"intake": 0}
    plug = Unplug(system.pg_port)
    with system.another("reporting", "reporting-unplugged",
                        POSTGRES_PORT=str(plug.port)) as url:
        assert requests.get(url + "/health/ready", timeout=10).status_code == 200
        plug.pull()
        # (a refusing answer is falsy: its json is what is waited for)
        refusal = wait_until(lambda: (r := requests.get(url + "/health/ready", timeout=10))
                             .status_code == 503 and r.json(), timeout=20, what="ready refusing")
        assert set(refusal["errors"]) == {"database"}
        assert requests.get(url + "/health", timeout=10).status_code == 503
        assert requests.get(url + "/health/live", timeout=5).status_code == 200


def broker_connections(system, service: str) -> int:
    done = subprocess.run(["rabbitmqctl", "list_connections", "-q", "--no-table-headers",
                           "vhost", "user"], check=True, capture_output=True, text=True,
                          timeout=60)
    user = system.broker_users[service][0]
    return sum(1 for line in done.stdout.splitlines()
               if line.split("\t") == [system.vhost, user])


def test_probing_health_many_times_opens_no_connection_to_the_broker(system):
    for service in SERVICES:
        assert requests.get(system.url(service, "/health"), timeout=5).status_code == 200
    before = {service: broker_connections(system, service) for service in SERVICES}
    assert all(before.values()), before  # the count does see the services' connections
    for _ in range(30):
        for service in SERVICES:
            for path in ("/health", "/health/ready", "/health/live"):
                assert requests.get(system.url(service, path), timeout=5).status_code == 200
    after = {service: broker_connections(system, service) for service in SERVICES}
    assert after == before


def test_a_service_with_metrics_off_answers_404_at_metrics_and_is_still_ready(system):
    with system.another("reporting", "reporting-uncounted", OURVOICE_METRICS="off") as url:
        answer = requests.get(url + "/metrics", timeout=10)
        assert answer.status_code == 404
        assert "OURVOICE_METRICS=off" in answer.json()["errors"]["_"][0]
        assert requests.get(url + "/health/ready", timeout=10).status_code == 200
    assert requests.get(system.url("reporting", "/metrics"), timeout=10).status_code == 200
