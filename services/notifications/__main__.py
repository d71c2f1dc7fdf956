"""`python -m services.notifications`: the one command that runs notifications."""

import eventlet

eventlet.monkey_patch()  # before anything opens a socket

from shared import runner  # noqa: E402  (before anything imports psycopg: see there)

# isort: split
from services.notifications.service import Service  # noqa: E402

runner.main(Service)
