"""`python -m services.reporting`: the one command that runs reporting."""

from shared import runner  # first: it makes the process green before anything else loads

runner.check("reporting")  # every setting well formed, before reporting's modules read one

from services.reporting.service import Service  # noqa: E402

runner.main(Service)
