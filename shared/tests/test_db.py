"""Which database failures a consumer waits out rather than dead-letters."""

import psycopg
from eventsourcing import persistence

from shared.db import transient


def wrapped(error: Exception) -> persistence.ProgrammingError:
    """As eventsourcing raises it: its own class, the driver's error as the cause."""
    try:
        raise persistence.ProgrammingError(str(error)) from error
    except persistence.ProgrammingError as raised:
        return raised


def test_an_outage_and_a_stale_prepared_statement_are_tried_again():
    assert transient(psycopg.OperationalError("server closed the connection unexpectedly"))
    assert transient(wrapped(psycopg.errors.InvalidSqlStatementName(
        'prepared statement "_pg3_4" does not exist')))


def test_a_mistake_in_the_statement_is_not():
    assert not transient(wrapped(psycopg.errors.UndefinedColumn('column "x" does not exist')))
    assert not transient(persistence.ProgrammingError("no cause"))
    assert not transient(ValueError("not the database at all"))
