"""`ourvoice setup`: the database, every service's tables, the broker's exchanges and
queues and each service's broker user, so that services started together find them in
place. The tables are those the services declare (see the registry)."""

from __future__ import annotations


def setup() -> None:
    import kombu

    from ourvoice import registry
    from shared import access, accounts, broker, topology
    from shared.db import FOLLOWERS_DDL, Database
    from shared.settings import settings
    from shared.store import open_store

    db = Database(max_size=1)
    db.migrate(FOLLOWERS_DDL, *access.DDL, *accounts.DDL, *registry.ddl())
    db.close()
    for store_class in registry.stores().values():
        open_store(store_class).close()
    with kombu.Connection(settings().amqp_uri) as connection:
        topology.declare(connection.default_channel)
    broker.put_service_users()
