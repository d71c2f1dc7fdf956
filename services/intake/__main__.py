"""`python -m services.intake`: the one command that runs intake."""

from shared import runner  # first: it makes the process green before anything else loads

runner.check("intake")  # every setting well formed, before intake's modules read one

from services.intake.service import Service  # noqa: E402

runner.main(Service)
