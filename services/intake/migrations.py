"""Intake's migrations after the first (which makes its tables as declared; see
shared/migrations.py). Each statement here is also in the declared DDL, so a new
database and an upgraded one end the same."""

from services.intake import attachments, conversations, readmodels
from shared.migrations import Migration

MIGRATIONS = (
    Migration(2, "index the case list by category", (readmodels.CATEGORY_INDEX,)),
    Migration(3, "the tables of a case's files (sealed parts)", attachments.DDL),
    Migration(4, "the conversations by SMS and Telegram (sealed state, inbox, links)",
              conversations.DDL),
)
