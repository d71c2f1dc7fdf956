"""Benchmarks for Our Voice: each figure of the platform is measured next to a raw
baseline taken in the same run, on the same machine, so a ratio says what the platform's
own work costs rather than how fast the hardware happens to be.

Run with `make bench` (or `python -m bench`). Every benchmark works on a database and a
RabbitMQ virtual host of its own, created for it and removed afterwards.

The figures at scale (bench/at_scale.py) grow routing's store to 1,000,000 events and
take several minutes. `OURVOICE_BENCH_SCALE` scales their sizes (stored events,
running deadlines, the big office, the overdue cases) down for a quicker run:
`OURVOICE_BENCH_SCALE=0.1 make bench` stops at 100,000 events. It defaults to 1, the
full sizes."""

# The platform picks how psycopg waits for the server when `shared` is first imported
# (it must be before psycopg itself); importing it here, first, makes every figure of
# the run, the raw baselines included, use the same client set-up as the services.
import shared  # noqa: F401
