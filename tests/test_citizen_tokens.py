"""Citizen tokens can be revoked and rotated, and no one can make one from what is public
(through the real services, broker and database)."""

import base64
import hashlib
import hmac
import secrets
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests

from shared.config import DEFAULTS
from tests.system import ROOT, complaint, submit, wait_until

pytestmark = pytest.mark.e2e

RETENTION_SECONDS = 6
OLD_SECRET = "2026a:" + secrets.token_hex(32)
NEW_SECRET = "2026b:" + secrets.token_hex(32)
SYSTEM_ENV = {"OURVOICE_CITIZEN_TOKEN_RETENTION": f"PT{RETENTION_SECONDS}S",
              "OURVOICE_SECRET": OLD_SECRET}
# Every token of a case with its revocation, if any (revocations are appended apart).
TOKENS = ("(SELECT * FROM ourvoice_citizen_tokens "
          "LEFT JOIN ourvoice_citizen_token_revocations USING (token_hash)) AS tokens")
REVOKED = {"errors": {"Authorization": ["this token has been revoked"]}}
NOT_VALID = {"errors": {"Authorization": ["this token is not valid"]}}
RETIRED = {"errors": {"Authorization": [
    "this token was signed with a secret that is no longer in use"]}}


def follow(system, case, token=None) -> requests.Response:
    return system.call("GET", "intake", f"/v1/cases/{case['tracking_code']}",
                       token or case["citizen_token"])


def rotate(system, case, token=None) -> requests.Response:
    return system.call("POST", "intake", f"/v1/cases/{case['tracking_code']}/token",
                       token or case["citizen_token"])


def ourvoice(system, *args) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / ".venv" / "bin" / "ourvoice"), *args], env=system.env,
                          capture_output=True, text=True, timeout=60)


def view_status(system, case) -> str | None:
    return system.scalar("SELECT status FROM intake_case_view WHERE case_id = %s",
                         (case["case_id"],))


def test_the_token_is_refused_after_privacy_erase(system):
    identified = submit(system, complaint(complainant={
        "anonymous": False, "name": "Chan Sopheap", "phone": "012 987 654", "gender": "female"}))
    anonymous = submit(system)
    for case in (identified, anonymous):
        assert follow(system, case).status_code == 200
        erased = ourvoice(system, "privacy", "erase", case["tracking_code"])
        assert erased.returncode == 0, erased.stderr
        assert "citizen tokens are revoked" in erased.stdout
        refused = follow(system, case)
        assert (refused.status_code, refused.json()) == (401, REVOKED)
        # Nor can the stolen token make itself a new one.
        assert rotate(system, case).status_code == 401
    assert system.scalar(f"SELECT count(*) FROM {TOKENS} WHERE case_id = ANY(%s)"
                         " AND revoked_because = 'erased'",
                         ([identified["case_id"], anonymous["case_id"]],)) == 2


def test_rotation_gives_a_new_token_and_refuses_the_old_from_then_on(system):
    case = submit(system)
    rotated = rotate(system, case)
    assert rotated.status_code == 201, rotated.text
    new = rotated.json()["citizen_token"]
    assert new != case["citizen_token"] and new.startswith("c2.2026a.")
    old = follow(system, case)
    assert (old.status_code, old.json()) == (401, REVOKED)
    again = rotate(system, case)
    assert (again.status_code, again.json()) == (401, REVOKED)
    assert follow(system, case, new).json()["tracking_code"] == case["tracking_code"]
    withdrawn = system.call("POST", "intake", f"/v1/cases/{case['tracking_code']}/withdraw",
                            case["citizen_token"], json={})
    assert withdrawn.status_code == 401
    # Only hashes are kept: neither token is anywhere in the table.
    stored = system.query(f"SELECT * FROM {TOKENS} WHERE case_id = %s "
                          "ORDER BY version", (case["case_id"],))
    assert [(r["version"], r["revoked_because"]) for r in stored] == [(1, "rotated"), (2, None)]
    assert [r["token_hash"] for r in stored] == [
        hashlib.sha256(t.encode()).hexdigest() for t in (case["citizen_token"], new)]
    assert not any(t in str(stored) for t in (case["citizen_token"], new))


def test_two_rotations_racing_with_one_token_give_one_new_token(system):
    case = submit(system)
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(rotate(system, case)))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(a.status_code for a in answers) == [201, 401, 401, 401]
    assert system.scalar(f"SELECT count(*) FROM {TOKENS} WHERE case_id = %s "
                         "AND revoked_at IS NULL", (case["case_id"],)) == 1


def test_nobody_can_sign_a_token_for_a_public_tracking_code(system):
    """The attack of the issue: a tracking code from the public Open311 list, a token
    signed with the development secret (and one with the deployment's own secret, as
    someone who stole it would)."""
    submit(system)
    listed = requests.get(system.url("intake", "/open311/v2/requests.json"), timeout=10).json()
    code = listed[0]["service_request_id"]
    case_id = system.scalar("SELECT case_id FROM intake_cases WHERE tracking_code = %s", (code,))

    def mac(key: bytes, message: bytes) -> str:
        digest = hmac.new(key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    development = DEFAULTS["OURVOICE_SECRET"].split(":", 1)[1].encode()
    own = OLD_SECRET.split(":", 1)[1].encode()
    forged = [
        f"c1.{case_id.hex}.{mac(development, f'citizen-token:{case_id}'.encode())}",
        f"c1.{case_id.hex}.{mac(b'local-development-secret-change-me', f'citizen-token:{case_id}'.encode())}",
        *(f"c2.{sid}.{case_id.hex}.1.{mac(key, f'citizen-token:{case_id.hex}:1:'.encode())}"
          for sid, key in (("dev", development), ("2026a", own))),
    ]
    for token in forged:
        refused = system.call("GET", "intake", f"/v1/cases/{code}", token)
        assert (refused.status_code, refused.json()) == (401, NOT_VALID), token


def test_a_retry_with_the_same_key_gets_the_same_token_even_racing(system):
    body = complaint(description="ទឹកមិនហូរ បីថ្ងៃ")
    key = f"retry-{secrets.token_hex(8)}"
    answers = []

    def send():
        answers.append(requests.post(system.url("intake", "/v1/cases"), json=body,
                                     headers={"Idempotency-Key": key}, timeout=30))

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {a.status_code for a in answers} == {201}
    assert len({a.text for a in answers}) == 1
    first = answers[0].json()
    assert follow(system, first).status_code == 200
    assert submit(system, body, **{"Idempotency-Key": key}) == first
    assert system.scalar("SELECT count(*) FROM ourvoice_citizen_tokens WHERE case_id = %s",
                         (first["case_id"],)) == 1


def test_withdrawn_and_closed_cases_close_to_their_tokens_after_the_retention(system):
    staff = system.principal("staff", "commune-120101")
    withdrawn, closed = submit(system), submit(system)
    assert system.call("POST", "intake", f"/v1/cases/{withdrawn['tracking_code']}/withdraw",
                       withdrawn["citizen_token"], json={}).status_code == 200
    wait_until(lambda: system.scalar("SELECT count(*) FROM routing_office_queue "
                                     "WHERE tracking_code = %s", (closed["tracking_code"],)),
               what="routed")
    path = f"/v1/cases/{closed['case_id']}"
    assert system.call("POST", "routing", path + "/acknowledge", staff).status_code == 200
    assert system.call("POST", "routing", path + "/resolve", staff,
                       json={"resolution": "Fixed."}).status_code == 200
    wait_until(lambda: view_status(system, closed) == "resolved", what="resolved")
    assert system.call("POST", "intake", f"/v1/cases/{closed['tracking_code']}/feedback",
                       closed["citizen_token"],
                       json={"satisfied": True, "rating": 5}).status_code == 200
    for case, status in ((withdrawn, "withdrawn"), (closed, "closed")):
        wait_until(lambda c=case, s=status: view_status(system, c) == s, what=status)
        at = system.scalar("SELECT status_at FROM intake_case_view WHERE case_id = %s",
                           (case["case_id"],))
        if datetime.now(UTC) < at + timedelta(seconds=RETENTION_SECONDS - 1):
            assert follow(system, case).status_code == 200  # still within the retention
        wait_until(lambda c=case: follow(system, c).status_code == 401,
                   timeout=RETENTION_SECONDS + 20, what=f"{status} case's token revoked")
        assert follow(system, case).json() == REVOKED
        assert system.scalar(f"SELECT revoked_because FROM {TOKENS} "
                             "WHERE case_id = %s", (case["case_id"],)) == "retention"
    still_open = submit(system)
    time.sleep(RETENTION_SECONDS / 3)
    assert follow(system, still_open).status_code == 200


def restart_intake(system, secret: str) -> None:
    system.stop("intake")
    system.env["OURVOICE_SECRET"] = secret
    system.start("intake")


def test_an_older_secret_verifies_during_its_overlap_and_not_after(system):
    signed_before = [submit(system), submit(system)]
    assert all(c["citizen_token"].startswith("c2.2026a.") for c in signed_before)
    later = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
    try:
        restart_intake(system, f"{NEW_SECRET},{OLD_SECRET}:{later}")
        assert all(follow(system, c).status_code == 200 for c in signed_before)
        assert submit(system)["citizen_token"].startswith("c2.2026b.")
        moved = rotate(system, signed_before[0])  # the app moves to the new secret
        assert moved.status_code == 201
        moved_token = moved.json()["citizen_token"]
        assert moved_token.startswith("c2.2026b.")

        past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
        restart_intake(system, f"{NEW_SECRET},{OLD_SECRET}:{past}")
        refused = follow(system, signed_before[1])
        assert (refused.status_code, refused.json()) == (401, RETIRED)
        assert follow(system, signed_before[0], moved_token).status_code == 200
    finally:
        restart_intake(system, OLD_SECRET)


def start_intake(system, **changes) -> subprocess.CompletedProcess:
    env = {**system.env, **changes}
    # Without the check it would run until the timeout.
    return subprocess.run([sys.executable, "-m", "services.intake"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("mode", ["prod", "Production", " production"])
def test_a_mode_that_is_not_exactly_production_or_development_refuses_to_start(system, mode):
    finished = start_intake(system, OURVOICE_ENV=mode,
                            OURVOICE_MASTER_KEY=base64.b64encode(secrets.token_bytes(32)).decode())
    assert finished.returncode == 1
    assert f"OURVOICE_ENV={mode!r} is not a mode" in finished.stderr
    assert "'development' or 'production'" in finished.stderr


def test_production_refuses_a_one_letter_secret(system):
    finished = start_intake(system, OURVOICE_ENV="production", OURVOICE_SECRET="x",
                            OURVOICE_MASTER_KEY=base64.b64encode(secrets.token_bytes(32)).decode())
    assert finished.returncode == 1
    assert "OURVOICE_SECRET" in finished.stderr and "openssl rand -base64 32" in finished.stderr
    assert "OURVOICE_MASTER_KEY" not in finished.stderr
