"""What one client can take from the services, through the real servers: slow clients are
dropped without stopping the others, a huge body is refused before it is read, deeply
nested JSON is a 400, a case takes a bounded number of messages, key guessing and public
reads are rate limited, and no log line puts a client's address beside a case."""

import json
import re
import select
import socket
import subprocess
import threading
import time
import uuid

import pytest
import requests

from ourvoice.supervisor import service_command
from tests.system import ROOT, complaint, free_port, submit, wait_until
from tests.test_intake_lifecycle import citizen, office, view, view_in

pytestmark = pytest.mark.e2e

READ_TIMEOUT = 5
SYSTEM_ENV = {
    "OURVOICE_HTTP_READ_TIMEOUT_SECONDS": str(READ_TIMEOUT),
    "OURVOICE_MESSAGES_PER_CASE": "4",
    "OURVOICE_MESSAGES_PER_DAY": "3",
    # Low enough to reach in a test, high enough for the start-up health polls.
    "OURVOICE_PUBLIC_READS_PER_MINUTE": "400",
}
MAX_BODY = 1 << 20  # the default
TRACKING_CODE = re.compile(r"[2-9A-HJKMNP-Z]{5}-[2-9A-HJKMNP-Z]{5}")
CASE_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def address(system, service: str) -> tuple[str, int]:
    host, port = system.env[f"{service.upper()}_ADDRESS"].split(":")
    return host, int(port)


def head(path: str, **headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json",
             *(f"{name.replace('_', '-')}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def answer_of(sock: socket.socket, timeout: float) -> bytes:
    """What the server wrote before closing (or before `timeout`)."""
    sock.settimeout(timeout)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return received


def timed_submission(system) -> float:
    before = time.monotonic()
    submitted = requests.post(system.url("intake", "/v1/cases"), json=complaint(), timeout=10)
    assert submitted.status_code == 201, submitted.text
    return time.monotonic() - before


def test_two_hundred_slow_clients_do_not_stop_a_normal_one(system):
    intake = address(system, "intake")
    # What a submission takes on this machine now, with nobody in the way: the second
    # allowed beside the slow clients comes on top (the machine may be busy otherwise).
    alone = min(timed_submission(system) for _ in range(3))
    slow_bodies, slow_headers = [], []
    for _ in range(180):  # headers sent, then a body of 4000 bytes one byte a second
        sock = socket.create_connection(intake)
        sock.sendall(head("/v1/cases", Content_Length="4000"))
        slow_bodies.append(sock)
    for _ in range(20):  # the headers themselves one byte a second
        slow_headers.append(socket.create_connection(intake))
    started = time.monotonic()
    stop = threading.Event()

    def dribble():
        header = head("/v1/cases", Content_Length="4000")
        sent = 0
        while not stop.is_set():
            for sock in slow_bodies:
                try:
                    sock.send(b" ")
                except OSError:
                    pass
            for sock in slow_headers:
                try:
                    sock.send(header[sent:sent + 1])
                except OSError:
                    pass
            sent += 1
            stop.wait(1.0)

    dribbler = threading.Thread(target=dribble, daemon=True)
    dribbler.start()
    try:
        time.sleep(1.5)  # every slow client is in the middle of its request
        took = timed_submission(system)
        print(f"a submission alone: {alone:.3f} s; beside 200 slow clients: {took:.3f} s")
        assert took < alone + 1.0, \
            f"a submission took {took:.2f} s beside 200 slow clients, {alone:.2f} s alone"
        before = time.monotonic()
        health = requests.get(system.url("intake", "/health"), timeout=10)
        assert health.status_code == 200 and time.monotonic() - before < 1.0 + alone

        # The slow ones are dropped once the read timeout has passed: those with their
        # headers in get a 408, those still sending headers a closed connection.
        answers = [answer_of(sock, READ_TIMEOUT + 5 - (time.monotonic() - started))
                   for sock in slow_bodies]
        closed_after = time.monotonic() - started
        assert all(a.startswith(b"HTTP/1.1 408") for a in answers), \
            {a[:40] for a in answers}
        assert b'"errors"' in answers[0] and b"did not arrive within 5 s" in answers[0]
        assert all(answer_of(sock, 2.0) == b"" for sock in slow_headers)
        assert closed_after < READ_TIMEOUT + 5
    finally:
        stop.set()
        dribbler.join()
        for sock in slow_bodies + slow_headers:
            sock.close()


def send_until_answered(sock: socket.socket, total: int, piece: bytes) -> tuple[int, bytes]:
    """Send up to `total` bytes of `piece`s, a piece every 5 ms (some 13 MB/s), stopping
    as soon as the server answers; returns how much was sent and the answer."""
    sent = 0
    while sent < total:
        readable, _, _ = select.select([sock], [], [], 0.005)
        if readable:
            break
        try:
            sent += sock.send(piece)
        except OSError:
            break
    return sent, answer_of(sock, 5.0)


def test_a_ten_megabyte_body_is_refused_before_it_is_sent(system):
    ten_mb = 10 << 20
    with socket.create_connection(address(system, "intake")) as sock:
        sock.sendall(head("/v1/cases", Content_Length=str(ten_mb)))
        sent, answer = send_until_answered(sock, ten_mb, b" " * 65536)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert f"the body is larger than {MAX_BODY} bytes".encode() in answer
    assert sent < MAX_BODY, f"{sent} bytes went before the refusal"
    print(f"10 MB announced: refused after {sent} bytes of the body")

    # Without a length announced, the body is counted as it comes.
    chunk = b"10000\r\n" + b" " * 0x10000 + b"\r\n"
    with socket.create_connection(address(system, "intake")) as sock:
        sock.sendall(head("/v1/cases", Transfer_Encoding="chunked"))
        sent, answer = send_until_answered(sock, ten_mb, chunk)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < ten_mb // 2, f"{sent} bytes went before the refusal"
    print(f"10 MB chunked: refused after {sent} bytes of the body")

    # A body within the limit still works, chunked or not.
    assert submit(system)["status"] == "submitted"
    body = json.dumps(complaint()).encode()
    chunked = requests.post(system.url("intake", "/v1/cases"), timeout=30,
                            data=iter([body[:100], body[100:]]),  # a generator goes chunked
                            headers={"Content-Type": "application/json"})
    assert chunked.status_code == 201, chunked.text


def json_body_operations(system, service: str) -> list[tuple[str, str]]:
    """The operations taking a JSON body, but a webhook's, whose body is read only once
    its signature holds (tests/test_conversations.py sends it a signed deep one)."""
    document = system.call("GET", service, "/openapi.json").json()
    return [(method.upper(), path) for path, operations in document["paths"].items()
            for method, operation in operations.items()
            if "application/json" in operation.get("requestBody", {}).get("content", {})
            and not operation.get("x-signed-body")]


def test_json_nested_five_thousand_deep_is_a_400_on_every_body_endpoint(system):
    case = submit(system)
    wait_until(lambda: system.scalar(
        "SELECT count(*) FROM routing_office_queue WHERE tracking_code = %s",
        (case["tracking_code"],)), what="the case routed")
    tokens = [case["citizen_token"], system.principal("staff", "commune-120101"),
              system.principal("ombudsman", "district-ombudsman-1201"), system.principal("admin"),
              system.principal("auditor")]
    values = {"tracking_code": case["tracking_code"], "case_id": case["case_id"],
              "office_id": "commune-120101"}  # the staff token's own office
    deep = "[" * 5000 + "]" * 5000
    tried = []
    for service in ("intake", "routing", "notifications", "reporting"):
        for method, path in json_body_operations(system, service):
            url = re.sub(r"{(\w+)}", lambda m: values.get(m.group(1), str(uuid.uuid4())), path)
            answers = []
            for token in tokens:
                response = requests.request(
                    method, system.url(service, url), data=deep, timeout=30,
                    headers={"Authorization": f"Bearer {token}",
                             "Content-Type": "application/json"})
                assert response.status_code < 500, (method, path, response.text)
                answers.append(response)
            assert any(r.status_code == 400 and r.json() == {"errors": {"_": [
                "the body nests deeper than 32 levels"]}} for r in answers), \
                (method, path, [(r.status_code, r.text[:100]) for r in answers])
            tried.append(f"{service} {method} {path}")
    assert {"intake POST /v1/cases", "intake POST /v1/cases/{tracking_code}/messages",
            "routing POST /v1/cases/{case_id}/resolve"} <= set(tried), tried

    # Nesting within the limit is still an ordinary validation error.
    shallow = requests.post(system.url("intake", "/v1/cases"),
                            json=complaint(location=[[[{"commune": "120101"}]]]), timeout=30)
    assert shallow.status_code == 400 and "location" in shallow.json()["errors"]


def test_a_case_takes_a_bounded_number_of_messages(system):
    case = submit(system)
    view_in(system, case, "routed")
    for n in range(3):
        assert citizen(system, case, "messages", {"text": f"message {n} " + "x" * 3990}
                       ).status_code == 200
    today = citizen(system, case, "messages", {"text": "a fourth today"})
    assert today.status_code == 429
    assert today.json() == {"errors": {"text": [
        "a case takes at most 3 messages in 24 hours; try again later"]}}
    assert 86000 < int(today.headers["Retry-After"]) <= 86401

    # The office's question is answered even so: it asked for it.
    office(system, case, "acknowledge")
    office(system, case, "request-info", {"question": "Which village are you in?"})
    view_in(system, case, "waiting-for-citizen")
    answered = citizen(system, case, "messages", {"text": "Phum Thmei"})
    assert answered.status_code == 200 and answered.json()["answers_request"] is True

    full = citizen(system, case, "messages", {"text": "one more"})
    assert full.status_code == 409
    assert full.json() == {"errors": {"text": [
        "a case takes at most 4 messages; this one has them all"]}}
    seen = view(system, case)
    assert len(seen["messages"]) == 4
    assert len(requests.get(system.url("intake", f"/v1/cases/{case['tracking_code']}"),
                            headers={"Authorization": f"Bearer {case['citizen_token']}"},
                            timeout=30).content) < 4 * 4000 * 3 + 10_000


def test_open311_key_guesses_are_rate_limited(system):
    form = {"api_key": "guess", "service_code": "water-supply", "address_id": "120101",
            "description": "No water for three days."}
    url = system.url("intake", "/open311/v2/requests.json")
    answers = [requests.post(url, data={**form, "api_key": f"guess-{n}"}, timeout=30)
               for n in range(11)]
    assert [a.status_code for a in answers] == [403] * 10 + [429]
    # Open311's own list of errors, the field named in the description.
    assert answers[-1].json()[0]["description"].startswith(
        "api_key: too many wrong keys from this address")
    assert int(answers[-1].headers["Retry-After"]) >= 1
    # The guesser cannot try the right key either, for now.
    right = requests.post(url, data={**form, "api_key": "open311-development-key"}, timeout=30)
    assert right.status_code == 429


def test_public_reads_are_rate_limited_per_address(system):
    session = requests.Session()
    url = system.url("intake", "/v1/categories")
    statuses = []
    for _ in range(2000):  # 400 at once, then refilled at 400 a minute
        response = session.get(url, timeout=30)
        statuses.append(response.status_code)
        if response.status_code == 429:
            break
    assert statuses[-1] == 429 and statuses[:-1] == [200] * (len(statuses) - 1)
    assert len(statuses) > 390
    assert response.json()["errors"]["_"][0].startswith("too many requests from this address")
    assert int(response.headers["Retry-After"]) >= 1
    # Each service keeps its own count.
    assert requests.get(system.url("routing", "/v1/offices"), timeout=30).status_code == 200


@pytest.mark.parametrize("name, value", [("OURVOICE_MAX_BODY_BYTES", "lots"),
                                         ("OURVOICE_HTTP_READ_TIMEOUT_SECONDS", "0"),
                                         ("OURVOICE_MESSAGES_PER_DAY", "-1")])
def test_a_wrong_limit_stops_the_service_saying_why(system, name, value):
    env = {**system.env, name: value, "INTAKE_ADDRESS": f"127.0.0.1:{free_port()}"}
    done = subprocess.run(service_command("intake"), env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1].startswith(f"intake: {name} must be a ")


def test_no_log_line_puts_a_client_address_beside_a_case(system):
    case = submit(system)
    assert view(system, case)["tracking_code"] == case["tracking_code"]
    requests.get(system.url("intake", f"/open311/v2/requests/{case['tracking_code']}.json"),
                 timeout=30)
    access_lines, wrong = [], []
    for log in system.logs.glob("*.log"):
        for line in log.read_text(errors="replace").splitlines():
            if '"GET /v1/cases/' in line or '"POST /v1/cases' in line:
                access_lines.append(line)
            if "127.0.0.1" in line and (TRACKING_CODE.search(line) or CASE_ID.search(line)):
                wrong.append(line)
    assert not wrong, "\n".join(wrong[:5])
    mine = [line for line in access_lines if case["tracking_code"] in line]
    assert mine and all(re.search(r' client [0-9a-f]{12} "GET /v1/cases/', line)
                        for line in mine), mine
