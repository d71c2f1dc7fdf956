"""`ourvoice setup`: the database, every service's tables, the broker's exchanges and
queues and each service's broker user, so that services started together find them in
place. `ourvoice migrate`: the tables alone, brought up to date by their migrations
(shared/migrations.py), and `ourvoice migrate status`, what each part has taken."""

from __future__ import annotations


def setup() -> None:
    import kombu

    from shared import broker, topology
    from shared.settings import SERVICES, settings

    migrate_all()
    with kombu.Connection(settings().amqp_uri) as connection:
        topology.declare(connection.default_channel)
        for service in SERVICES:
            declare_rpc_queue(connection, topology.rpc_queue(service))
    broker.put_service_users()


def declare_rpc_queue(connection, queue) -> None:
    """A service's quorum queue of RPC requests, in place of the classic queue an earlier
    version made (a queue's type cannot change): setup runs with the services stopped,
    and a request lost with the old queue is one its caller times out on and retries."""
    import amqp.exceptions

    try:
        queue(connection.channel()).declare()
    except amqp.exceptions.PreconditionFailed:  # it closed that channel
        channel = connection.channel()
        channel.queue_delete(queue.name)
        queue(channel).declare()


def migrate_all() -> list:
    from ourvoice import registry
    from shared import migrations

    return migrations.apply(registry.parts())


def migrate(args) -> int:
    from ourvoice import registry
    from shared import migrations

    if args.action == "status":
        pending = 0
        for part, migration, applied_at in migrations.status(registry.parts()):
            when = applied_at.isoformat(timespec="seconds") if applied_at else "pending"
            pending += applied_at is None
            print(f"{part:<14} {migration.version:>3}  {migration.name:<40} {when}")
        if pending:
            print(f"{pending} pending: run `ourvoice migrate`")
        return 1 if pending else 0
    ran = migrate_all()
    for part, migration in ran:
        print(f"{part} {migration.version}: {migration.name}")
    print(f"{len(ran)} migration(s) applied; the schema is up to date")
    return 0
