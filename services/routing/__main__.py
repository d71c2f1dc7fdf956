"""`python -m services.routing`: the one command that runs routing."""

from shared import runner  # first: it makes the process green before anything else loads

runner.check("routing")  # every setting well formed, before routing's modules read one

from services.routing.service import Service  # noqa: E402

runner.main(Service)
