"""Tamper evidence against whoever writes to the database, through the real services:
an event stored behind the chain's back is never published, and the relay stops at it;
a published event taken out, a store cut short, emptied or rewritten with its chain
recomputed are caught by `audit verify` or by `audit verify --against` a signed
checkpoint, which cannot be forged without the key; a revocation deleted is caught."""

import json
import time
import uuid
from contextlib import contextmanager

import kombu
import psycopg
import pytest
from psycopg.rows import dict_row

from ourvoice.registry import stores
from services.routing.domain import Case
from shared.chain import GENESIS, link
from shared.logs import decode, mapper
from tests.system import submit, wait_until
from tests.test_audit import office, ourvoice, routing_status

pytestmark = pytest.mark.e2e

# Reporting signs and publishes a checkpoint every second here, so one is seen soon.
SYSTEM_ENV = {"OURVOICE_CHECKPOINT_SECONDS": "1"}
OFFICE = "commune-120101"


@contextmanager
def tamperer(system):
    """A connection as an attacker with the database's password has it: triggers off."""
    with psycopg.connect(f"host=127.0.0.1 port={system.pg_port} user=postgres "
                         f"dbname={system.dbname}", row_factory=dict_row) as conn:
        conn.execute("SET session_replication_role = replica")
        yield conn


@contextmanager
def put_back_afterwards(system, *tables):
    """Whatever a test does to these tables, the next test finds them as they were."""
    with tamperer(system) as conn:
        for table in tables:
            conn.execute(f"CREATE TABLE saved_{table} AS SELECT * FROM {table}")
    try:
        yield
    finally:
        with tamperer(system) as conn:
            for table in tables:
                conn.execute(f"DELETE FROM {table}")
                conn.execute(f"INSERT INTO {table} SELECT * FROM saved_{table}")
                conn.execute(f"DROP TABLE saved_{table}")


def relink(conn, store: str) -> None:
    """What a careful tamperer does after changing a store: recompute every link from
    the genesis, keep the positions, and make the relay's record agree."""
    previous = GENESIS
    rows = conn.execute(f"SELECT c.position, e.notification_id, e.originator_id,"
                        f" e.originator_version, e.topic, e.state FROM {store}_chain c"
                        f" JOIN {store}_events e USING (notification_id) ORDER BY c.position"
                        ).fetchall()
    conn.execute(f"DELETE FROM {store}_chain WHERE notification_id NOT IN"
                 f" (SELECT notification_id FROM {store}_events)")
    for row in rows:
        previous = link(previous, row["notification_id"], row["originator_id"],
                        row["originator_version"], row["topic"], bytes(row["state"]))
        conn.execute(f"UPDATE {store}_chain SET hash = %s WHERE position = %s",
                     (previous, row["position"]))
    conn.execute(f"UPDATE ourvoice_relay_chain r SET notification_id = c.notification_id,"
                 f" hash = c.hash FROM (SELECT notification_id, hash FROM {store}_chain"
                 f" ORDER BY position DESC LIMIT 1) c WHERE r.store = %s", (store,))


def forged_resolution(system, case: dict) -> dict:
    """A CaseResolved for the case, made with the services' own code and encoding, as
    someone who read the source would make it."""
    rows = system.query("SELECT notification_id, originator_id, originator_version, topic,"
                        " state FROM routing_events WHERE originator_id = %s"
                        " ORDER BY originator_version", (case["case_id"],))
    aggregate = None
    for row in rows:
        aggregate = decode(stores()["routing"], tuple(row.values())).mutate(aggregate)
    assert isinstance(aggregate, Case) and aggregate.status == "acknowledged"
    aggregate.resolve("Closed: the complaint was unfounded.", by=str(uuid.uuid4()))
    stored = mapper(stores()["routing"]).to_stored_event(aggregate.collect_events()[0])
    return {"originator_id": stored.originator_id, "version": stored.originator_version,
            "topic": stored.topic, "state": stored.state}


def insert_event(conn, event: dict) -> int:
    return conn.execute(
        "INSERT INTO routing_events (originator_id, originator_version, topic, state)"
        " VALUES (%(originator_id)s, %(version)s, %(topic)s, %(state)s)"
        " RETURNING notification_id", event).fetchone()["notification_id"]


def case_view_status(system, case) -> str:
    return system.call("GET", "intake", f"/v1/cases/{case['tracking_code']}",
                       case["citizen_token"]).json()["status"]


def reached_reporting(system, notification_id: int) -> bool:
    return system.scalar("SELECT count(*) FROM reporting_tracking WHERE application_name ="
                         " 'routing' AND notification_id = %s", (notification_id,)) == 1


def acknowledged(system) -> dict:
    case = submit(system)
    wait_until(lambda: routing_status(system, case) == "routed", what="routed")
    office(system, case, "acknowledge")
    wait_until(lambda: case_view_status(system, case) == "acknowledged", what="acknowledged")
    return case


def checkpoint(system, path) -> dict:
    made = ourvoice(system, "audit", "checkpoint", "--out", str(path))
    assert made.returncode == 0, made.stderr
    return json.loads(path.read_text())


def test_an_event_stored_behind_the_chains_back_is_never_published(system):
    victim, bystander = acknowledged(system), acknowledged(system)
    wait_until(system.settled, what="settled")
    forged = forged_resolution(system, victim)
    with tamperer(system) as conn:
        position = insert_event(conn, forged)
    try:
        # The relay reads it within a second, and stops there, saying so.
        wait_until(lambda: system.scalar("SELECT stopped_at FROM ourvoice_relay_chain WHERE"
                                         " store = 'routing'") == position, what="the alarm")
        office(system, bystander, "resolve", {"resolution": "The pipe was repaired."})
        time.sleep(3)
        assert not reached_reporting(system, position)
        assert case_view_status(system, victim) == "acknowledged"
        # Nothing after it is published either: the relay does not skip what it cannot trust.
        assert case_view_status(system, bystander) == "acknowledged"
        log = (system.logs / "routing.log").read_text()
        assert f"relay routing stopped at notification {position} (case {victim['case_id']})" \
            f": the event has no link" in log and "ERROR" in log

        broken = ourvoice(system, "audit", "verify")
        assert broken.returncode == 1
        assert f"routing: BROKEN at notification {position}: the event has no link: it was " \
               f"stored behind the chain's back (case {victim['tracking_code']})" in broken.stdout
        assert f"relay routing: STOPPED at notification {position} since" in broken.stdout
        status = ourvoice(system, "projections", "status")
        assert status.returncode == 1
        assert f"relay routing: STOPPED at notification {position}" in status.stdout
    finally:
        with tamperer(system) as conn:
            conn.execute("DELETE FROM routing_events WHERE notification_id = %s", (position,))

    # The row taken out: the relay goes on with the real events, and the alarm is gone.
    wait_until(lambda: case_view_status(system, bystander) == "resolved", what="goes on")
    assert case_view_status(system, victim) == "acknowledged"
    wait_until(lambda: system.scalar("SELECT stopped_at IS NULL FROM ourvoice_relay_chain"
                                     " WHERE store = 'routing'"), what="the alarm cleared")
    wait_until(system.settled, what="settled")
    intact = ourvoice(system, "audit", "verify")
    assert intact.returncode == 0, intact.stdout
    assert ourvoice(system, "projections", "status").returncode == 0


def test_a_published_event_taken_out_with_its_link_is_caught(system, tmp_path):
    """An event stored with its link (as any writer's is) goes out; deleting it and its
    link afterwards, even with the chain and the relay's record recomputed, shows."""
    victim = acknowledged(system)
    wait_until(system.settled, what="settled")
    forged = forged_resolution(system, victim)
    with put_back_afterwards(system, "routing_events", "routing_chain", "ourvoice_relay_chain"):
        with psycopg.connect(f"host=127.0.0.1 port={system.pg_port} user=postgres "
                             f"dbname={system.dbname}", row_factory=dict_row) as conn:
            position = insert_event(conn, forged)  # the trigger links it
        wait_until(lambda: reached_reporting(system, position), what="published")
        wait_until(lambda: case_view_status(system, victim) == "resolved", what="seen")
        signed = tmp_path / "after.json"
        checkpoint(system, signed)

        with tamperer(system) as conn:
            conn.execute("DELETE FROM routing_events WHERE notification_id = %s", (position,))
            conn.execute("DELETE FROM routing_chain WHERE notification_id = %s", (position,))
        caught = ourvoice(system, "audit", "verify")
        assert caught.returncode == 1
        assert f"routing: BROKEN at notification {position}: the relay published this " \
               "event, and the chain no longer has it" in caught.stdout, caught.stdout

        with tamperer(system) as conn:
            relink(conn, "routing")
        assert ourvoice(system, "audit", "verify").returncode == 0  # the database agrees now
        against = ourvoice(system, "audit", "verify", "--against", str(signed))
        assert against.returncode == 1
        assert "routing: BROKEN at its end: the chain was cut short: it no longer reaches " \
               "position" in against.stdout and f"(notification {position})" in against.stdout
    assert ourvoice(system, "audit", "verify").returncode == 0
    # The forged event is gone from the store; so that `settled` counts right for the
    # tests after this one, reporting forgets it had it.
    system.query("DELETE FROM reporting_tracking WHERE application_name = 'routing' AND"
                 " notification_id = %s RETURNING 1", (position,))


def test_a_store_cut_short_or_emptied_fails_against_an_earlier_checkpoint(system, tmp_path):
    for _ in range(3):
        submit(system)
    wait_until(system.settled, what="settled")
    signed = checkpoint(system, tmp_path / "checkpoint.json")
    head = next(c for c in signed["chains"] if c["chain"] == "intake")
    path = str(tmp_path / "checkpoint.json")
    assert ourvoice(system, "audit", "verify", "--against", path).returncode == 0
    with put_back_afterwards(system, "intake_events", "intake_chain", "ourvoice_relay_chain"):
        with tamperer(system) as conn:  # the last two events, their links, the relay's record
            last = conn.execute("SELECT notification_id FROM intake_events ORDER BY"
                                " notification_id DESC OFFSET 1 LIMIT 1").fetchone()
            for table in ("intake_events", "intake_chain"):
                conn.execute(f"DELETE FROM {table} WHERE notification_id >= %s",
                             (last["notification_id"],))
            conn.execute("UPDATE ourvoice_relay_chain SET (notification_id, hash) ="
                         " (SELECT notification_id, hash FROM intake_chain ORDER BY position"
                         " DESC LIMIT 1) WHERE store = 'intake'")
        assert ourvoice(system, "audit", "verify").returncode == 0  # nothing else tells
        cut = ourvoice(system, "audit", "verify", "--against", path)
        assert cut.returncode == 1
        assert f"intake: BROKEN at its end: the chain was cut short: it no longer reaches " \
               f"position {head['position']}, its head at the checkpoint of " \
               f"{signed['made_at'][:19]}" in cut.stdout, cut.stdout
        assert f"(notification {head['notification_id']})" in cut.stdout
        assert "routing: " in cut.stdout and "routing: BROKEN" not in cut.stdout

        with tamperer(system) as conn:
            for table in ("intake_events", "intake_chain", "ourvoice_relay_chain"):
                conn.execute(f"DELETE FROM {table}")
        emptied = ourvoice(system, "audit", "verify", "--against", path)
        assert emptied.returncode == 1
        assert "intake: BROKEN at its end: the chain was cut short" in emptied.stdout
        assert "0 links remain" in emptied.stdout
    assert ourvoice(system, "audit", "verify", "--against", path).returncode == 0


def test_a_store_rewritten_wholesale_fails_and_a_forged_checkpoint_is_refused(system,
                                                                               tmp_path):
    case = acknowledged(system)
    wait_until(system.settled, what="settled")
    path = tmp_path / "checkpoint.json"
    signed = checkpoint(system, path)
    with put_back_afterwards(system, "routing_events", "routing_chain", "ourvoice_relay_chain"):
        with tamperer(system) as conn:  # the case's routing changed, the chain recomputed
            row = conn.execute("SELECT notification_id, state FROM routing_events WHERE"
                               " originator_id = %s AND topic LIKE '%%CaseRouted'",
                               (case["case_id"],)).fetchone()
            state = bytes(row["state"]).replace(b"commune-120101", b"commune-120102")
            assert state != bytes(row["state"])
            conn.execute("UPDATE routing_events SET state = %s WHERE notification_id = %s",
                         (state, row["notification_id"]))
            relink(conn, "routing")
        assert ourvoice(system, "audit", "verify").returncode == 0
        rewritten = ourvoice(system, "audit", "verify", "--against", str(path))
        assert rewritten.returncode == 1
        routing = next(c for c in signed["chains"] if c["chain"] == "routing")
        assert f"routing: BROKEN at notification {routing['notification_id']}: the chain was " \
               f"rewritten: its link at position {routing['position']} is not the one the " \
               "checkpoint of" in rewritten.stdout, rewritten.stdout

        # The tamperer signs a checkpoint of the rewritten chains with a key of their own.
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        from shared import checkpoint as checkpoints
        from shared.checkpoint import all_chains

        with psycopg.connect(f"host=127.0.0.1 port={system.pg_port} user=postgres "
                             f"dbname={system.dbname}") as conn:
            forged = checkpoints.make(conn, *all_chains(), key=Ed25519PrivateKey.generate())
        forged_path = tmp_path / "forged.json"
        forged_path.write_text(json.dumps(forged))
        refused = ourvoice(system, "audit", "verify", "--against", str(forged_path))
        assert refused.returncode == 1
        key = ourvoice(system, "audit", "public-key").stdout.strip()
        assert f"REFUSED: the checkpoint's signature does not hold for the public key {key}" \
            in refused.stdout
        # A real checkpoint with its routing head edited to the rewritten one's: refused too.
        edited = {**signed, "chains": [c if c["chain"] != "routing" else
                                       next(f for f in forged["chains"] if f["chain"] == "routing")
                                       for c in signed["chains"]]}
        edited_path = tmp_path / "edited.json"
        edited_path.write_text(json.dumps(edited))
        assert "REFUSED" in ourvoice(system, "audit", "verify", "--against", str(edited_path),
                                     "--public-key", key).stdout
    assert ourvoice(system, "audit", "verify", "--against", str(path), "--public-key",
                    key).returncode == 0


def test_a_revocation_deleted_behind_the_chains_back_is_caught(system):
    token = system.principal("admin", fresh=True)
    principal_id = system.scalar("SELECT id FROM ourvoice_principals ORDER BY created_at DESC"
                                 " LIMIT 1")
    revoked = ourvoice(system, "principal", "revoke", str(principal_id))
    assert revoked.returncode == 0, revoked.stderr
    assert system.call("GET", "reporting", "/v1/reports/summary", token).status_code == 401
    assert ourvoice(system, "audit", "verify").returncode == 0
    with put_back_afterwards(system, "ourvoice_revocations"):
        system.query("DELETE FROM ourvoice_revocations WHERE principal_id = %s RETURNING 1",
                     (principal_id,))
        # The attack works on the services (the revoked admin is let in again) ...
        assert system.call("GET", "reporting", "/v1/reports/summary", token).status_code == 200
        # ... and shows in the chain.
        caught = ourvoice(system, "audit", "verify")
        assert caught.returncode == 1
        assert f"ourvoice_revocations: BROKEN at row {principal_id}: the revocation was " \
               "deleted" in caught.stdout, caught.stdout
        assert "ourvoice_principals: " in caught.stdout and \
            "ourvoice_principals: BROKEN" not in caught.stdout
    assert ourvoice(system, "audit", "verify").returncode == 0


def test_a_citizen_token_revocation_deleted_is_caught(system):
    """Erasure revokes the citizen's token; deleting that revocation would open the case
    to whoever holds the old token again, and shows in the chain."""
    case = submit(system)
    erased = ourvoice(system, "privacy", "erase", case["tracking_code"])
    assert erased.returncode == 0, erased.stderr
    view = f"/v1/cases/{case['tracking_code']}"
    assert system.call("GET", "intake", view, case["citizen_token"]).status_code == 401
    assert ourvoice(system, "audit", "verify").returncode == 0
    with put_back_afterwards(system, "ourvoice_citizen_token_revocations"):
        token_hash = system.scalar(
            "DELETE FROM ourvoice_citizen_token_revocations r USING ourvoice_citizen_tokens t "
            "WHERE r.token_hash = t.token_hash AND t.case_id = %s RETURNING r.token_hash",
            (case["case_id"],))
        assert system.call("GET", "intake", view, case["citizen_token"]).status_code == 200
        caught = ourvoice(system, "audit", "verify")
        assert caught.returncode == 1
        assert f"ourvoice_citizen_token_revocations: BROKEN at row {token_hash}: the citizen " \
               "token revocation was deleted" in caught.stdout, caught.stdout
    assert ourvoice(system, "audit", "verify").returncode == 0


def test_reporting_publishes_signed_checkpoints_that_no_consumer_takes_for_an_event(system,
                                                                                   tmp_path):
    # Auditors' system takes them as a subscriber of its own, as an operator makes one.
    auditors = system.add_subscriber("auditors", checkpoints=True)
    acknowledged(system)  # every store has events, so every chain a head
    wait_until(system.settled, what="settled")
    wanted = {"intake", "routing", "notifications", "ourvoice_principals"}
    with kombu.Connection(auditors) as connection:
        queue = kombu.Queue("ourvoice.subscriber.auditors", no_declare=True)
        received = []
        with kombu.Consumer(connection, [queue], accept=["json"],
                            callbacks=[lambda body, message: (received.append(body),
                                                              message.ack())]):
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not (
                    received and wanted <= {c["chain"] for c in received[-1]["chains"]}):
                try:
                    connection.drain_events(timeout=1)
                except TimeoutError:
                    pass
    assert received, "no checkpoint published within 20 s"
    made = received[-1]
    assert {c["chain"] for c in made["chains"]} >= wanted
    path = tmp_path / "published.json"
    path.write_text(json.dumps(made))
    verified = ourvoice(system, "audit", "verify", "--against", str(path))
    assert verified.returncode == 0, verified.stdout
    assert "signature holds" in verified.stdout
    # Nothing of it reached the services' queues: every dead-letter queue is empty.
    with system.broker() as connection:
        channel = connection.default_channel
        for service in ("intake", "routing", "notifications", "reporting"):
            _, messages, _ = channel.queue_declare(f"ourvoice.{service}.dead-letters",
                                                   passive=True)
            assert messages == 0, service
