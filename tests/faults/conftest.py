import pytest

from tests.faults.infra import ThrowawayPostgres, ThrowawayRabbitMQ


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
