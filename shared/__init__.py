"""Code common to the four Our Voice services: configuration, public event schemas,
the event store, the relay, the idempotent consumer, read models and the HTTP edge."""

import os

# nameko runs every service under eventlet. psycopg's default C wait function blocks the
# whole process on each query; the select-based one cooperates with green threads.
# It must be chosen before psycopg is first imported, hence here.
os.environ.setdefault("PSYCOPG_WAIT_FUNC", "wait_select")

import warnings

# nameko depends on eventlet, which announces its own deprecation on import; the
# services' logs should carry their own news, not that.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
