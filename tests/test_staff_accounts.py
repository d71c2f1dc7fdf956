"""Named staff accounts through the real services: made with `ourvoice staff`, logged in
to at routing, their sessions ending when they should, failed logins throttled in the
database, a second factor where the policy wants one, and the person's username as the
`by` of what they do."""

import hashlib
import json
import re
import statistics
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pyotp
import pytest
import requests

from tests.system import submit, wait_until

pytestmark = pytest.mark.e2e

OFFICE = "commune-120101"  # where the default complaint is routed
OTHER_OFFICE = "commune-120109"
PER_ADDRESS = 8
SYSTEM_ENV = {"OURVOICE_LOGIN_FAILURES_PER_ADDRESS": str(PER_ADDRESS)}
PASSWORD = "a long enough password"
WRONG = {"errors": {"_": ["wrong username or password"]}}


@pytest.fixture(autouse=True)
def no_failures_counted(system):
    """Every client here is 127.0.0.1: one test's failures must not throttle the next."""
    system.query("DELETE FROM ourvoice_login_failures RETURNING 1")


def add(system, username, role="staff", office=OFFICE, *extra, name=None):
    """`ourvoice staff add`: the one-time password, and the otpauth URI if one was made."""
    done = system.ourvoice("staff", "add", "--name", name or username.title(), "--username",
                           username, "--role", role,
                           *(["--office", office] if office else []), *extra)
    lines = done.stdout.strip().splitlines()
    uri = next((line for line in lines if line.startswith("otpauth://")), None)
    return lines[-1], uri


def login(system, username, password, **more):
    return system.call("POST", "routing", "/v1/sessions",
                       json={"username": username, "password": password, **more})


def session(system, username, role="staff", office=OFFICE, name=None) -> str:
    """A new account, its one-time password changed to PASSWORD: its session token."""
    one_time, _ = add(system, username, role, office, name=name)
    response = login(system, username, one_time, new_password=PASSWORD)
    assert response.status_code == 201, response.text
    return response.json()["session_token"]


def current(system, token):
    return system.call("GET", "routing", "/v1/sessions/current", token)


def secret_of(uri: str) -> str:
    return re.search(r"secret=([A-Z2-7]+)", uri).group(1)


def test_a_one_time_password_logs_in_only_to_be_changed(system):
    one_time, uri = add(system, "sok.dara", name="Sok Dara")
    assert uri is None and len(one_time) >= 16

    refused = login(system, "sok.dara", one_time)
    assert refused.status_code == 403
    assert list(refused.json()["errors"]) == ["new_password"]
    assert "must be changed" in refused.json()["errors"]["new_password"][0]
    short = login(system, "sok.dara", one_time, new_password="too short")
    assert short.status_code == 400
    assert short.json() == {"errors": {"new_password": [
        "a password needs at least 10 characters"]}}
    assert system.scalar("SELECT count(*) FROM ourvoice_staff_sessions") == 0
    # The right one-time password is no failed login, even though it did not log in.
    assert system.scalar("SELECT count(*) FROM ourvoice_login_failures") == 0

    before = datetime.now(UTC)
    changed = login(system, "sok.dara", one_time, new_password=PASSWORD)
    assert changed.status_code == 201, changed.text
    body = changed.json()
    assert body["account"] == {"username": "sok.dara", "name": "Sok Dara", "role": "staff",
                               "office_id": OFFICE}
    token = body["session_token"]
    assert token.startswith("s1.")
    expires_at = datetime.fromisoformat(body["expires_at"])
    assert before + timedelta(minutes=29) < expires_at < before + timedelta(minutes=31)
    # Only the token's hash is kept; the password only as an argon2id hash.
    assert system.scalar("SELECT count(*) FROM ourvoice_staff_sessions WHERE token_hash = %s",
                         (hashlib.sha256(token.encode()).hexdigest(),)) == 1
    row = system.query("SELECT * FROM ourvoice_staff_accounts WHERE username = 'sok.dara'")[0]
    assert row["password_hash"].startswith("$argon2id$") and not row["must_change_password"]

    assert login(system, "sok.dara", one_time).json() == WRONG  # used up
    again = login(system, "sok.dara", PASSWORD)
    assert again.status_code == 201, again.text
    found = current(system, again.json()["session_token"])
    assert found.status_code == 200, found.text
    assert {k: v for k, v in found.json().items() if k != "expires_at"} == body["account"]
    # Neither password is in any log, nor in `staff list`.
    logs = "".join(path.read_text(errors="replace") for path in system.logs.glob("*.log"))
    listed = system.ourvoice("staff", "list").stdout
    for secret in (one_time, PASSWORD, token):
        assert secret not in logs and secret not in listed
    assert re.search(r"sok\.dara\s+staff\s+commune-120101\s+active\s+-\s+Sok Dara", listed), listed


def test_a_wrong_username_and_a_wrong_password_get_the_same_answer_as_slowly(system):
    session(system, "keo.sophal")
    timings = {"wrong password": [], "no such username": []}
    for _ in range(3):
        for what, username in (("wrong password", "keo.sophal"),
                               ("no such username", "keo.sophal.nobody")):
            started = time.monotonic()
            response = login(system, username, "not the password at all")
            timings[what].append(time.monotonic() - started)
            assert response.status_code == 401 and response.json() == WRONG
    # Both check an argon2 hash (a dummy one for a username nobody has): the time of an
    # answer does not tell whether the username exists.
    assert statistics.median(timings["no such username"]) > \
        0.5 * statistics.median(timings["wrong password"]), timings


@pytest.fixture
def second_routing(system):
    """Another routing instance beside the system's: the URL it answers at."""
    with system.another("routing", "routing-2") as url:
        yield url


def test_failed_logins_of_a_username_are_throttled_across_instances(system, second_routing):
    session(system, "chan.vanna")
    wrong = {"username": "chan.vanna", "password": "not the password at all"}
    for n in range(5):  # some at each instance
        url = second_routing if n % 2 else system.url("routing", "")
        assert requests.post(url + "/v1/sessions", json=wrong, timeout=30).status_code == 401
    throttled = login(system, "chan.vanna", PASSWORD)  # even the right password waits
    assert throttled.status_code == 429
    assert requests.post(second_routing + "/v1/sessions", json={
        "username": "chan.vanna", "password": PASSWORD}, timeout=30).status_code == 429
    assert 1 <= int(throttled.headers["Retry-After"]) <= 15 * 60
    assert "too many failed logins" in throttled.json()["errors"]["_"][0]
    # Counted where every routing instance sees it, without the username in the clear.
    assert system.scalar("SELECT count(*) FROM ourvoice_login_failures") == 10
    assert not system.query("SELECT 1 FROM ourvoice_login_failures WHERE subject LIKE %s",
                            ("%chan%",))
    # Another account from the same address still logs in.
    other = session(system, "chan.other")
    assert current(system, other).status_code == 200
    # Once the failures are older than the window, the right password works again.
    system.query("UPDATE ourvoice_login_failures SET failed_at = failed_at - interval "
                 "'15 minutes' RETURNING 1")
    assert login(system, "chan.vanna", PASSWORD).status_code == 201


def test_failed_logins_from_one_address_are_throttled_whatever_the_username(system):
    session(system, "meas.bopha")
    for n in range(PER_ADDRESS):
        assert login(system, f"guess{n}", "not the password at all").status_code == 401
    throttled = login(system, "meas.bopha", PASSWORD)
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) >= 1


def test_a_session_ends_when_unused_too_long_and_at_its_hard_limit(system):
    token = session(system, "heng.rithy")
    token_hash = hashlib.sha256(token.encode()).hexdigest()
    assert current(system, token).status_code == 200
    limit = system.scalar("SELECT expires_at - created_at FROM ourvoice_staff_sessions"
                          " WHERE token_hash = %s", (token_hash,))
    assert limit == timedelta(hours=12)

    # Used within the idle time, it goes on, and its use counts.
    system.query("UPDATE ourvoice_staff_sessions SET last_seen_at = now() - interval "
                 "'29 minutes' WHERE token_hash = %s RETURNING 1", (token_hash,))
    assert current(system, token).status_code == 200
    assert system.scalar("SELECT now() - last_seen_at FROM ourvoice_staff_sessions"
                         " WHERE token_hash = %s", (token_hash,)) < timedelta(minutes=1)
    system.query("UPDATE ourvoice_staff_sessions SET last_seen_at = now() - interval "
                 "'31 minutes' WHERE token_hash = %s RETURNING 1", (token_hash,))
    unused = current(system, token)
    assert unused.status_code == 401
    assert unused.json() == {"errors": {"Authorization": ["this session has expired; log in again"]}}

    token = login(system, "heng.rithy", PASSWORD).json()["session_token"]
    token_hash = hashlib.sha256(token.encode()).hexdigest()
    system.query("UPDATE ourvoice_staff_sessions SET expires_at = now() - interval '1 second'"
                 " WHERE token_hash = %s RETURNING 1", (token_hash,))
    assert current(system, token).status_code == 401  # used a moment ago, yet past its limit


def test_logging_out_ends_the_session_at_once(system):
    token = session(system, "ly.sreymom")
    queue = f"/v1/offices/{OFFICE}/queue"
    assert system.call("GET", "routing", queue, token).status_code == 200
    out = system.call("DELETE", "routing", "/v1/sessions/current", token)
    assert out.status_code == 204 and out.content == b""
    for path in ("/v1/sessions/current", queue):
        ended = system.call("GET", "routing", path, token)
        assert ended.status_code == 401
        assert ended.json() == {"errors": {"Authorization": ["this session has ended; log in again"]}}
    # An office system's token has no session to show or end.
    office_system = system.principal("staff", OFFICE)
    assert current(system, office_system).status_code == 403
    assert system.call("DELETE", "routing", "/v1/sessions/current",
                       office_system).status_code == 403


def test_disabling_an_account_or_resetting_its_password_ends_its_sessions(system):
    token = session(system, "pich.nary")
    assert system.ourvoice("staff", "disable", "pich.nary").returncode == 0
    refused = current(system, token)
    assert refused.status_code == 401
    assert refused.json() == {"errors": {"Authorization": ["this account is disabled"]}}
    assert login(system, "pich.nary", PASSWORD).status_code == 401
    assert "disabled" in system.ourvoice("staff", "list").stdout
    assert system.ourvoice("staff", "disable", "pich.nary", check=False).returncode == 1

    token = session(system, "tep.vibol")
    reset = system.ourvoice("staff", "reset-password", "tep.vibol").stdout.strip().splitlines()
    assert current(system, token).status_code == 401  # whoever knew the old one is out
    assert login(system, "tep.vibol", PASSWORD).json() == WRONG
    assert login(system, "tep.vibol", reset[-1]).status_code == 403  # to be changed
    assert login(system, "tep.vibol", reset[-1], new_password="another long password"
                 ).status_code == 201


def test_accounts_are_made_only_as_they_can_be(system):
    for args, message in (
            (("--username", "no.office", "--role", "staff"), "staff accounts need --office"),
            (("--username", "no.such", "--role", "staff", "--office", "commune-999999"),
             "no such office: commune-999999"),
            (("--username", "Not Valid!", "--role", "admin"), "a username is"),
    ):
        done = system.ourvoice("staff", "add", "--name", "Someone", *args, check=False)
        assert done.returncode == 2 and message in done.stderr, done.stderr
    add(system, "twice", "auditor", None)
    done = system.ourvoice("staff", "add", "--name", "Again", "--username", "twice", "--role",
                           "admin", check=False)
    assert done.returncode == 2 and "already an account twice" in done.stderr


def test_the_staff_of_an_office_for_the_assignment_picker(system):
    token = session(system, "b.staff", name="Bun Srey")
    add(system, "a.staff", name="Am Dara")
    add(system, "c.gone", name="Chea Gone")
    system.ourvoice("staff", "disable", "c.gone")
    add(system, "elsewhere", "staff", OTHER_OFFICE)
    listed = system.call("GET", "routing", f"/v1/offices/{OFFICE}/staff", token)
    assert listed.status_code == 200, listed.text
    names = [(s["username"], s["name"], s["role"]) for s in listed.json()]
    assert ("a.staff", "Am Dara", "staff") in names and ("b.staff", "Bun Srey", "staff") in names
    assert names == sorted(names, key=lambda s: s[1])
    assert "c.gone" not in {n[0] for n in names} and "elsewhere" not in {n[0] for n in names}
    assert system.call("GET", "routing", f"/v1/offices/{OTHER_OFFICE}/staff",
                       token).status_code == 403
    auditor = system.principal("auditor")
    assert [s["username"] for s in system.call(
        "GET", "routing", f"/v1/offices/{OTHER_OFFICE}/staff", auditor).json()] == ["elsewhere"]
    assert system.call("GET", "routing", "/v1/offices/commune-999999/staff",
                       auditor).status_code == 404


def test_what_a_named_account_does_is_recorded_as_done_by_it(system):
    token = session(system, "so.phalla", name="So Phalla")
    case = submit(system)
    wait_until(lambda: system.scalar("SELECT count(*) FROM routing_office_queue"
                                     " WHERE case_id = %s", (case["case_id"],)), what="routed")
    done = system.call("POST", "routing", f"/v1/cases/{case['case_id']}/acknowledge", token)
    assert done.status_code == 200, done.text

    def recorded():
        found = system.ourvoice("audit", "history", case["tracking_code"], "--json")
        events = json.loads(found.stdout)["events"]
        return next((e for e in events if e["event_type"] == "CaseAcknowledged"), None)

    acknowledged = wait_until(recorded, what="the acknowledgement in the history")
    assert acknowledged["actor"] == {"role": "staff", "office_id": OFFICE,
                                     "username": "so.phalla", "name": "So Phalla"}
    text = system.ourvoice("audit", "history", case["tracking_code"]).stdout
    assert re.search(r"CaseAcknowledged\s+staff of commune-120101 \(so\.phalla\)", text), text
    # Every service takes a session: an auditor's reads the same history from reporting.
    auditor = session(system, "audit.or", "auditor", None, name="Auditor Or")
    history = system.call("GET", "reporting", f"/v1/audit/cases/{case['tracking_code']}",
                          auditor)
    assert history.status_code == 200, history.text
    assert acknowledged in history.json()["events"]


def test_the_changes_of_accounts_are_chained(system):
    add(system, "chained.one")
    verified = system.ourvoice("audit", "verify", check=False)
    assert verified.returncode == 0, verified.stdout
    assert "ourvoice_staff_account_changes: " in verified.stdout
    change = system.query("SELECT * FROM ourvoice_staff_account_changes"
                          " WHERE username = 'chained.one'")[0]
    system.query("DELETE FROM ourvoice_staff_account_changes WHERE id = %s RETURNING 1",
                 (change["id"],))
    try:
        broken = system.ourvoice("audit", "verify", check=False)
        assert broken.returncode == 1
        assert f"ourvoice_staff_account_changes: BROKEN at row {change['id']}" in broken.stdout
    finally:  # put back as it was, behind the trigger's back (its link is still there)
        columns = list(change)
        with psycopg.connect(f"host=127.0.0.1 port={system.pg_port} user=postgres "
                             f"dbname={system.dbname}") as conn:
            conn.execute("SET session_replication_role = replica")
            conn.execute(f"INSERT INTO ourvoice_staff_account_changes ({', '.join(columns)})"
                         f" VALUES ({', '.join(['%s'] * len(columns))})",
                         [change[c] for c in columns])
    assert system.ourvoice("audit", "verify", check=False).returncode == 0


def test_a_second_factor_where_the_policy_or_the_account_wants_one(system):
    earlier = session(system, "older.ombudsman", "ombudsman", "district-ombudsman-1201")
    required = system.ourvoice("staff", "require-totp", "--roles", "ombudsman,admin")
    try:
        assert "older.ombudsman" in required.stdout  # has none yet
        assert current(system, earlier).status_code == 200  # a session already open goes on
        none_yet = login(system, "older.ombudsman", PASSWORD)
        assert none_yet.status_code == 401 and "has none yet" in none_yet.json()["errors"]["totp"][0]

        one_time, uri = add(system, "new.ombudsman", "ombudsman", "district-ombudsman-1201")
        assert uri.startswith("otpauth://totp/Our%20Voice:new.ombudsman?")
        totp = pyotp.TOTP(secret_of(uri))
        missing = login(system, "new.ombudsman", one_time, new_password=PASSWORD)
        assert missing.status_code == 401 and list(missing.json()["errors"]) == ["totp"]
        wrong_code = str((int(totp.now()) + 1) % 1_000_000).zfill(6)
        wrong = login(system, "new.ombudsman", one_time, new_password=PASSWORD, totp=wrong_code)
        assert wrong.status_code == 401 and list(wrong.json()["errors"]) == ["totp"]
        code = totp.now()
        good = login(system, "new.ombudsman", one_time, new_password=PASSWORD, totp=code)
        assert good.status_code == 201, good.text
        replayed = login(system, "new.ombudsman", PASSWORD, totp=code)
        assert replayed.status_code == 401 and "used already" in replayed.json()["errors"]["totp"][0]
        # The sealed secret is no base32 secret in the clear.
        stored = system.scalar("SELECT totp_secret FROM ourvoice_staff_accounts"
                               " WHERE username = 'new.ombudsman'")
        assert secret_of(uri) not in stored

        # A reset sets one up for an account of the role that has none.
        reset = system.ourvoice("staff", "reset-password", "older.ombudsman").stdout
        assert "otpauth://" in reset

        # Staff need none, unless the account was made with one.
        assert current(system, session(system, "plain.staff")).status_code == 200
        one_time, uri = add(system, "staff.totp", "staff", OFFICE, "--totp")
        assert uri is not None
        assert login(system, "staff.totp", one_time, new_password=PASSWORD).status_code == 401
        assert login(system, "staff.totp", one_time, new_password=PASSWORD,
                     totp=pyotp.TOTP(secret_of(uri)).now()).status_code == 201
    finally:
        system.ourvoice("staff", "require-totp", "--roles", "")
