import pytest

from tests.faults.infra import ThrowawayPostgres, ThrowawayRabbitMQ
from tests.faults.receivers import Receivers


@pytest.fixture(scope="session")
def postgres():
    server = ThrowawayPostgres()
    try:
        server.create()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def rabbitmq():
    broker = ThrowawayRabbitMQ()
    try:
        broker.create()
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="module")
def receivers():
    """The SMTP server and SMS gateway the system's notices go to."""
    receivers = Receivers()
    receivers.start()
    try:
        yield receivers
    finally:
        receivers.stop()
