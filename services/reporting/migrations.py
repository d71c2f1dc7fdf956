"""Reporting's migrations after the first (which makes its tables as declared; see
shared/migrations.py). Each step either makes what the declared DDL also makes, or
removes what it no longer makes, so a new database and an upgraded one end the same."""

from shared.migrations import Migration

MIGRATIONS = (
    # Each service gives its own part of a case's history now (notifications keeps its
    # own index of a case's streams): reporting's copies of the stores' indexes go.
    Migration(2, "retire the audit's indexes of the other stores", (
        *(f"DROP TABLE IF EXISTS reporting_audit_streams_{store}"
          for store in ("intake", "routing", "notifications")),
        "DELETE FROM ourvoice_followers WHERE name LIKE 'projection:reporting.audit_streams.%'",
    )),
)
