"""The services' parts, as each declares them on its nameko `Service` class:

- `EventStore(StoreClass, projections=...)`: its event store and the projections that
  follow the store's log;
- `DatabaseProvider(*ddl, subscribers=...)`: its tables and the read models the broker
  feeds it;
- `commands`: the operator commands it offers (`shared.operations.Command`);
- `history`: its part of a case's history (`shared.history.CaseHistory`), read from its
  store;
- `migrations`: the later migrations of its part of the schema (`shared.migrations`).

The four services are imported here by name, once: this is the one place that knows
them all."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache

from services.intake import service as intake
from services.notifications import service as notifications
from services.reporting import service as reporting
from services.routing import service as routing
from shared import migrations
from shared.db import DatabaseProvider
from shared.history import CaseHistory
from shared.operations import Command
from shared.store import CaseStore, EventStore, Projection, Subscriber

# In the order of shared.config.SERVICES: a case is submitted before it is routed.
SERVICES: dict[str, type] = {
    "intake": intake.Service,
    "routing": routing.Service,
    "notifications": notifications.Service,
    "reporting": reporting.Service,
}


def _providers(kind: type) -> Iterator[tuple[str, object]]:
    for name, service in SERVICES.items():
        for provider in vars(service).values():
            if isinstance(provider, kind):
                yield name, provider


@cache
def stores() -> dict[str, type[CaseStore]]:
    """Every event store, by its name (the prefix of its tables)."""
    return {p.store_class.name: p.store_class for _, p in _providers(EventStore)}


def projections() -> list[tuple[type[CaseStore], Projection]]:
    """Each projection with the store whose log it follows."""
    return [(p.store_class, projection) for _, p in _providers(EventStore)
            for projection in p.projections]


def subscribers() -> list[Subscriber]:
    """The read models fed by the broker with every store's public events."""
    return [subscriber for _, p in _providers(DatabaseProvider) for subscriber in p.subscribers]


def commands() -> list[Command]:
    """The operator commands the services offer, in the services' order."""
    return [command for service in SERVICES.values()
            for command in getattr(service, "commands", ())]


def histories() -> dict[str, CaseHistory]:
    """Each service's part of a case's history, by the service's name, in the services'
    order."""
    return {name: service.history for name, service in SERVICES.items()
            if getattr(service, "history", None) is not None}


def parts() -> list[migrations.Part]:
    """The schema's parts, in the order they are migrated: the kernel's, then each
    service's."""
    return [migrations.kernel(),
            *(migrations.service_part(name, service) for name, service in SERVICES.items())]
