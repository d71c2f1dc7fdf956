"""The bus knows who speaks: what an attacker with a broker login tried, through the real
broker and services. A stranger or an office system's subscriber gets no citizen's
contact nor a case's words over RPC; an event forged in a service's name (any headers, any
position) is dead-lettered and changes nothing, not even by taking the place of a real one;
the broker refuses a message claiming another user; a subscriber consumes its own queue,
its area's events, and can do nothing else."""

import json
import subprocess
import time
import uuid

import amqp.exceptions
import kombu
import pytest
from nameko.exceptions import RemoteError

from shared.config import SERVICES
from shared.topology import EVENTS, dead_letter_queue_name, queue_name
from tests.system import citizen_view, complaint, rabbitmqctl, rpc_call, submit, wait_until

pytestmark = pytest.mark.e2e

GBV_WORDS = "He hit me again on Sunday night."


@pytest.fixture(scope="module")
def stranger(system):
    """Someone with a broker login and every permission on the virtual host, as a leaked
    or over-broad account would have."""
    user, password = f"stranger-{system.name}", uuid.uuid4().hex
    rabbitmqctl("add_user", user, password, node=system.rabbitmq_node)
    rabbitmqctl("set_permissions", "-p", system.vhost, user, ".*", ".*", ".*",
                node=system.rabbitmq_node)
    yield user, system.amqp_uri_as(user, password)
    rabbitmqctl("delete_user", user, node=system.rabbitmq_node)


@pytest.fixture(scope="module")
def subscriber(system):
    name = f"office-{uuid.uuid4().hex[:8]}"
    return name, system.add_subscriber(name, "*.12.1201")


def identified(**overrides) -> dict:
    return complaint(complainant={"anonymous": False, "name": "Chan Sopheap",
                                  "phone": "012 987 654", "email": "sopheap@example.org",
                                  "gender": "female"}, **overrides)


def dead_letters(system, service):
    with system.broker() as connection:
        _, count, _ = connection.default_channel.queue_declare(
            dead_letter_queue_name(service), passive=True)
    return count


def refused_events(system, service) -> int:
    return system.call("GET", service, "/health").json()["refused_events"]




def routed(system, case):
    return wait_until(lambda: citizen_view(system, case)["status"] == "routed",
                      what="the case routed")


# -- RPC ---------------------------------------------------------------------------------

def test_contact_and_case_file_answer_only_the_services_that_need_them(system, stranger):
    user, stranger_uri = stranger
    case = submit(system, identified())
    gbv = submit(system, complaint(category="gender-based-violence", description=GBV_WORDS))
    routed(system, case)

    # What the issue did: any login called intake's RPC and got the data.
    for method, args in (("contacts_for", ([case["case_id"]],)),
                         ("case_file", (gbv["case_id"], "ombudsman")),
                         ("gender_counts", ({},))):
        with pytest.raises(RemoteError) as refused:
            rpc_call(stranger_uri, "stranger", "intake", method, *args)
        assert refused.value.exc_type == "CallerRefused" and user in str(refused.value)
    # A service asking for what is not its own is refused as well.
    with pytest.raises(RemoteError, match="CallerRefused"):
        system.rpc("routing", "intake", "contacts_for", [case["case_id"]])
    with pytest.raises(RemoteError, match="CallerRefused"):
        system.rpc("notifications", "intake", "case_file", gbv["case_id"], "ombudsman")
    # The operator's login publishes without a user_id: no caller, no answer.
    with pytest.raises(RemoteError, match="CallerRefused"):
        rpc_call(system.env["AMQP_URI"], "operator", "intake", "contacts_for", [case["case_id"]])

    # The services that need them get them.
    assert system.rpc("notifications", "intake", "contacts_for", [case["case_id"]])[
        case["case_id"]]["phone"] == "+85512987654"
    assert system.rpc("routing", "intake", "case_file", gbv["case_id"], "ombudsman")[
        "description"] == GBV_WORDS


def test_the_broker_refuses_a_message_that_claims_another_user(system):
    """The operator (guest here, an administrator) claims to be notifications: the
    broker closes the channel instead of delivering the request."""
    notifications_user = system.broker_users["notifications"][0]
    exchange = kombu.Exchange("nameko-rpc", type="topic", durable=True)
    with kombu.Connection(system.env["AMQP_URI"],
                          transport_options={"confirm_publish": True}) as connection:
        with pytest.raises(amqp.exceptions.PreconditionFailed, match="user_id"):
            kombu.Producer(connection.channel(), exchange=exchange, auto_declare=False).publish(
                {"args": [[str(uuid.uuid4())]], "kwargs": {}}, routing_key="intake.contacts_for",
                serializer="json", reply_to="nowhere", user_id=notifications_user)


# -- forged events -----------------------------------------------------------------------

def forged_resolution(system, case, position) -> tuple[str, bytes, dict]:
    body = {
        "event_id": str(uuid.uuid4()), "event_type": "CaseResolved", "schema_version": 1,
        "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
        "case_id": case["case_id"], "tracking_code": case["tracking_code"], "sequence": 3,
        "office_id": "commune-120101",
        "location": {"province": "12", "district": "1201", "commune": "120101"},
        "data": {"resolution": "Your complaint was found baseless. Stop writing."},
    }
    return ("CaseResolved.12.1201", json.dumps(body).encode(),
            {"ourvoice-source": "routing", "ourvoice-position": position})


def test_a_forged_resolution_is_dead_lettered_and_the_citizen_never_sees_it(system, stranger):
    _, stranger_uri = stranger
    case = submit(system)
    routed(system, case)
    wait_until(system.settled, what="a quiet system")
    before = {s: dead_letters(system, s) for s in SERVICES}
    refused_before = refused_events(system, "intake")

    key, body, headers = forged_resolution(system, case, 10**9)
    # By a stranger, in its own name; by intake's own user (not the owner of routing's
    # log); and by the operator's login claiming routing's user, which the broker refuses.
    system.publish_raw(key, body, headers=headers, amqp_uri=stranger_uri,
                       user_id=stranger[0])
    system.publish_raw(key, body, headers={**headers, "ourvoice-position": 10**9 + 1},
                       as_service="intake")
    with pytest.raises(amqp.exceptions.PreconditionFailed):
        system.publish_raw(key, body, headers={**headers, "ourvoice-position": 10**9 + 2},
                           user_id=system.broker_users["routing"][0])

    for service in ("intake", "notifications", "reporting"):
        wait_until(lambda s=service: dead_letters(system, s) == before[s] + 2,
                   what=f"both forgeries in {service}'s dead letters")
    with system.broker() as connection:
        forged = connection.default_channel.basic_get(dead_letter_queue_name("intake"))
        assert forged.properties["user_id"] == stranger[0]
        connection.default_channel.basic_reject(forged.delivery_tag, requeue=True)
    assert refused_events(system, "intake") == refused_before + 2
    view = citizen_view(system, case)
    assert view["status"] == "routed"
    assert "baseless" not in json.dumps(view)
    assert system.scalar("SELECT count(*) FROM intake_tracking WHERE application_name = "
                         "'routing' AND notification_id >= %s", (10**9,)) == 0


def test_forged_events_at_the_next_positions_do_not_suppress_the_real_ones(system):
    staff = system.principal("staff", "commune-120101")
    case = submit(system)
    routed(system, case)
    wait_until(system.settled, what="a quiet system")
    # Where routing's log will write next: the attack forges those positions first.
    last = system.scalar("SELECT max(notification_id) FROM routing_events")
    before = dead_letters(system, "intake")
    for position in range(last + 1, last + 6):
        key, body, headers = forged_resolution(system, case, position)
        system.publish_raw(key, body, headers=headers, as_service="notifications")
    wait_until(lambda: dead_letters(system, "intake") == before + 5,
               what="the forgeries dead-lettered")

    path = f"/v1/cases/{case['case_id']}"
    assert system.call("POST", "routing", path + "/acknowledge", staff).status_code == 200
    resolved = system.call("POST", "routing", path + "/resolve", staff,
                           json={"resolution": "The pipe is repaired."})
    assert resolved.status_code == 200, resolved.text
    view = wait_until(lambda: (v := citizen_view(system, case))["status"] == "resolved" and v,
                      what="the real resolution at the citizen")
    assert "The pipe is repaired." in json.dumps(view)
    assert "baseless" not in json.dumps(view)


# -- office systems' subscribers ---------------------------------------------------------

def refused(action) -> bool:
    try:
        action()
    except (amqp.exceptions.AccessRefused, amqp.exceptions.NotAllowed) as error:
        return "ACCESS_REFUSED" in str(error) or "access" in str(error).lower()
    return False


def test_a_subscriber_receives_its_area_and_can_do_nothing_else(system, subscriber):
    name, uri = subscriber
    queue = f"ourvoice.subscriber.{name}"

    def publish():
        with kombu.Connection(uri, transport_options={"confirm_publish": True}) as connection:
            kombu.Producer(connection.channel(), exchange=EVENTS, auto_declare=False).publish(
                b"{}", routing_key="CaseResolved.12.1201")

    def declare_own_queue():
        with kombu.Connection(uri) as connection:
            kombu.Queue("office.mine", exchange=EVENTS, routing_key="#")(
                connection.channel()).declare()

    def bind_more():
        with kombu.Connection(uri) as connection:
            connection.channel().queue_bind(queue, EVENTS.name, "#")

    def consume(other):
        def action():
            with kombu.Connection(uri) as connection:
                channel = connection.channel()
                channel.basic_consume(other, callback=lambda m: None)
                connection.drain_events(timeout=0.5)
        return action

    assert refused(publish), "no publishing to the events exchange"
    assert refused(declare_own_queue), "no queue of its own making"
    assert refused(bind_more), "no binding beyond what the operator gave"
    for other in (queue_name("routing"), dead_letter_queue_name("intake"), "rpc-intake"):
        assert refused(consume(other)), other
    assert refused(lambda: rpc_call(uri, "office", "intake", "contacts_for",
                                    [str(uuid.uuid4())], timeout=3)), "no RPC"

    here = submit(system, complaint(location={"commune": "120101"}))
    far = submit(system, complaint(location={"commune": "170101"}))
    seen = []
    with kombu.Connection(uri) as connection:
        channel = connection.channel()
        channel.basic_qos(0, 100, False)
        channel.basic_consume(queue, callback=lambda m: seen.append(
            (json.loads(m.body), m.delivery_info["routing_key"])) or channel.basic_ack(
            m.delivery_tag))

        def drained():
            try:
                connection.drain_events(timeout=0.2)
            except TimeoutError:
                pass
            return {"CaseSubmitted", "CaseRouted"} <= {
                e["event_type"] for e, _ in seen if e["tracking_code"] == here["tracking_code"]}
        wait_until(drained, what="the district's events at its subscriber")
        wait_until(lambda: citizen_view(system, far)["status"] == "routed", what="far routed")
        time.sleep(0.5)
        while True:
            try:
                connection.drain_events(timeout=0.5)
            except TimeoutError:
                break
    assert {key.split(".", 1)[1] for _, key in seen} == {"12.1201"}
    assert far["tracking_code"] not in {e["tracking_code"] for e, _ in seen}


def test_subscribers_are_added_with_area_keys_only_listed_and_removed(system):
    def add(*args):
        return system.ourvoice("subscribers", "add", *args, check=False)

    name = f"ombudsman-{uuid.uuid4().hex[:8]}"
    for keys in (["#"], ["*.#"], ["*.*.*"], ["*.sensitive.12.*"], ["CaseDeleted.12.*"],
                 ["*.12.1701"], ["*.12"]):
        attempt = add(name, *[arg for key in keys for arg in ("--bind", key)])
        assert attempt.returncode == 2, (keys, attempt.stdout)
        assert keys[0] in attempt.stderr
    assert add(name, "--bind", "*.sensitive.12.*", "--bind", "#", "--ombudsman").returncode == 2
    nothing = add(name)  # neither an area nor the checkpoints: nothing to consume
    assert nothing.returncode == 2 and "--checkpoints" in nothing.stderr
    system.add_subscriber(name, "*.sensitive.12.1201", "CaseRouted.12.*", ombudsman=True)
    listed = system.ourvoice("subscribers", "list").stdout
    line = next(line for line in listed.splitlines() if line.startswith(name))
    assert "*.sensitive.12.1201" in line and "CaseRouted.12.*" in line
    assert add(name, "--bind", "*.12.*").returncode == 1, "no second user of the same name"

    assert system.ourvoice("subscribers", "remove", name).returncode == 0
    assert name not in system.ourvoice("subscribers", "list").stdout
    with system.broker() as connection, pytest.raises(amqp.exceptions.NotFound):
        connection.channel().queue_declare(f"ourvoice.subscriber.{name}", passive=True)
    users = subprocess.run(["rabbitmqctl", "-q", "list_users"], capture_output=True,
                           text=True, check=True).stdout
    assert f"ourvoice-subscriber-{name}" not in users
