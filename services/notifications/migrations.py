"""Notifications' migrations after the first (which makes its tables as declared; see
shared/migrations.py). Each statement here is also in the declared DDL, so a new
database and an upgraded one end the same."""

from services.notifications import history
from shared.migrations import Migration

MIGRATIONS = (
    # Its projection fills the table from the start of the log once it exists.
    Migration(2, "index each case's streams, for its part of the audit history",
              history.DDL),
)
