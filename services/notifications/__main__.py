"""`python -m services.notifications`: the one command that runs notifications."""

from shared import runner  # first: it makes the process green before anything else loads

runner.check("notifications")  # every setting well formed, before notifications's modules read one

from services.notifications.service import Service  # noqa: E402

runner.main(Service)
