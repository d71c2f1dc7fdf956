"""Every part's migrations, as the services declare them."""

from ourvoice import registry


def test_every_later_migration_is_also_in_the_declared_tables():
    """So a new database (and a read model rebuilt from its DDL) ends as an upgraded one:
    a later step makes what the declared DDL also makes, or removes what it no longer
    makes (which a new database never had)."""
    for part in registry.parts():
        declared = list(part.migrations[0].steps)
        for migration in part.migrations[1:]:
            for step in migration.steps:
                removal = isinstance(step, str) and step.startswith(("DROP ", "DELETE "))
                assert step in declared or removal, (part.name, migration.version, step)


def test_every_service_and_the_kernel_have_a_part():
    assert [part.name for part in registry.parts()] == ["kernel", *registry.SERVICES]
