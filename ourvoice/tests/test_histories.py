"""Each service's part of a case's history, as the services declare it."""

from ourvoice import registry
from services.reporting import audit


def test_every_store_reporting_merges_declares_its_part_of_a_history():
    """The parts `ourvoice audit history` reads are the ones reporting asks for over RPC,
    each from its own service's store, and what a part reads besides the store's events
    is kept from that store's log."""
    histories = registry.histories()
    assert list(histories) == list(audit.STORES)
    for name, part in histories.items():
        assert registry.stores()[part.store.name] is part.store and part.store.name == name
        followed = {projection.name for store, projection in registry.projections()
                    if store is part.store}
        assert {projection.name for projection in part.follows} <= followed
