"""`python -m services.intake`: the one command that runs intake."""

import eventlet

eventlet.monkey_patch()  # before anything opens a socket

from shared import runner  # noqa: E402  (before anything imports psycopg: see there)

# isort: split
from services.intake.service import Service  # noqa: E402

runner.main(Service)
