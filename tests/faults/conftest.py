import pytest

from tests.faults.infra import ThrowawayPostgres, ThrowawayRabbitMQ


def pytest_collection_modifyitems(items):
    # The fault suite takes minutes: `make test-faults` runs it, `make test` leaves it out.
    for item in items:
        item.add_marker(pytest.mark.chaos)


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
