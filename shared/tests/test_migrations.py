"""The order and the records of migrations, on a scratch database of the test's own."""

import uuid

import psycopg
import pytest
from psycopg import sql

from shared.config import Postgres
from shared.migrations import Migration, Part, apply, service_part, status


@pytest.fixture
def pg():
    pg = Postgres(host="127.0.0.1", port=5432, user="postgres", password="",
                  dbname=f"ourvoice_unit_migrations_{uuid.uuid4().hex[:8]}")
    yield pg
    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres",
                         autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(pg.dbname)))


def columns(pg, table):
    with psycopg.connect(pg.conninfo()) as conn:
        return [name for (name,) in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s"
            " ORDER BY ordinal_position", (table,))]


def part(*migrations):
    return Part("sample", list(migrations))


FIRST = Migration(1, "a table", ("CREATE TABLE IF NOT EXISTS sample (a int)",))
SECOND = Migration(2, "a column", ("ALTER TABLE sample ADD COLUMN IF NOT EXISTS b int",))


def test_migrations_are_numbered_from_one_without_gaps_or_repeats():
    part(FIRST, SECOND)
    for wrong in ([SECOND], [FIRST, FIRST], [FIRST, Migration(3, "skipped")],
                  [SECOND, FIRST]):
        with pytest.raises(ValueError, match="numbered 1, 2, 3"):
            part(*wrong)


def test_pending_migrations_run_in_order_once_and_are_recorded(pg):
    assert [m.version for _, m in apply([part(FIRST)], pg)] == [1]
    assert [(p, m.version, at is None) for p, m, at in status([part(FIRST, SECOND)], pg)] == [
        ("sample", 1, False), ("sample", 2, True)]
    assert [m.version for _, m in apply([part(FIRST, SECOND)], pg)] == [2]
    assert apply([part(FIRST, SECOND)], pg) == []
    assert columns(pg, "sample") == ["a", "b"]
    assert all(at is not None for _, _, at in status([part(FIRST, SECOND)], pg))


def test_a_failing_migration_leaves_nothing_of_itself_and_is_still_pending(pg):
    broken = Migration(2, "broken", ("ALTER TABLE sample ADD COLUMN c int",
                                     "ALTER TABLE nowhere ADD COLUMN d int"))
    with pytest.raises(psycopg.errors.UndefinedTable):
        apply([part(FIRST, broken)], pg)
    assert columns(pg, "sample") == ["a"]
    assert [at is None for _, _, at in status([part(FIRST, broken)], pg)] == [False, True]


def test_a_service_part_starts_with_its_declared_tables_then_its_later_migrations():
    class Provider:
        ddl = ("CREATE TABLE IF NOT EXISTS one (a int)",)
        projections = ()

    class Service:
        db = Provider()
        migrations = (Migration(2, "later", ("SELECT 1",)),)

    found = service_part("sample", Service)
    assert [(m.version, list(m.steps)) for m in found.migrations] == [
        (1, ["CREATE TABLE IF NOT EXISTS one (a int)"]), (2, ["SELECT 1"])]
