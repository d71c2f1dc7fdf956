"""What checking the hash chains costs: `ourvoice audit verify --against` a signed
checkpoint, over a routing store of a million events, beside a raw SELECT of the same
rows in the same run.

A database of its own gets the store (bench/fill.py: real routed cases COPYed in with
their links), and a checkpoint of its heads is signed with the deployment's key. Then,
turn about (best of REPEATS each):

- the raw baseline: a streaming SELECT of every link joined with its event, in chain
  order (the rows verify reads), doing nothing with them;
- the command as an auditor runs it (`ourvoice.chains.verify`): the
  checkpoint's signature, then every chain walked from the genesis, each link
  recomputed in Python, through the checkpoint's head.

`python -m bench.tamper [--events N]` runs it; `tamper_evidence(results, events)` has
the shape of the other phases of `python -m bench`."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from types import SimpleNamespace

import psycopg

from bench import fill
from bench.infra import Progress, phase, scratch_database
from bench.report import Results
from ourvoice.chains import verify
from services.routing import readmodels
from services.routing.service import Routing
from shared import checkpoint, settings
from shared.chain import _walk
from shared.db import FOLLOWERS_DDL, Database
from shared.store import open_store

REPEATS = 2


@contextlib.contextmanager
def database_of(pg):
    """The command reads its database from the environment, as it does in production."""
    saved = os.environ.get("POSTGRES_DBNAME")
    os.environ["POSTGRES_DBNAME"] = pg.dbname
    settings.reload()  # read at start, so read again
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("POSTGRES_DBNAME")
        else:
            os.environ["POSTGRES_DBNAME"] = saved
        settings.reload()


def raw_select(conninfo: str) -> tuple[int, float]:
    with psycopg.connect(conninfo) as conn:
        t0 = time.perf_counter()
        rows = sum(1 for _ in _walk(conn, "routing"))
        return rows, time.perf_counter() - t0


def timed_verify(path: str) -> tuple[int, float, str]:
    out = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(out):
        code = verify(SimpleNamespace(against=path, public_key=None))
    return code, time.perf_counter() - t0, out.getvalue()


def tamper_evidence(results: Results, events: int) -> None:
    phase(f"audit verify --against a checkpoint, {events:,} events")
    with scratch_database() as pg:
        open_store(Routing, pg).close()
        db = Database(pg, max_size=1)
        db.migrate(FOLLOWERS_DDL, *readmodels.QUEUE_DDL)
        db.close()
        progress = Progress(f"filling a routing store to {events:,} events")
        filler = fill.Filler(pg.conninfo(), fill.Prototypes(
            datetime.now(UTC).replace(minute=0, second=0, microsecond=0)))
        done, start = 0, time.perf_counter()

        def advance(n: int) -> None:
            nonlocal done
            done += n
            progress.update(f"{done:,}/{events:,}, {done / (time.perf_counter() - start):,.0f}/s")

        try:
            filler.fill(fill.Spec(spread=events), advance)
        finally:
            filler.close()
        progress.done(f"{done:,} events in {time.perf_counter() - start:.0f} s")
        with psycopg.connect(pg.conninfo(), autocommit=True) as conn:
            conn.execute("VACUUM (ANALYZE) routing_events")
            conn.execute("VACUUM (ANALYZE) routing_chain")
            made = checkpoint.make(conn, ["routing"], ())
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:
            json.dump(made, file)
        try:
            raws, verifies = [], []
            for _ in range(REPEATS):
                rows, seconds = raw_select(pg.conninfo())
                raws.append(seconds)
                with database_of(pg):
                    code, seconds, output = timed_verify(file.name)
                if code != 0:
                    results.failures.append(f"audit verify --against failed: {output}")
                verifies.append(seconds)
        finally:
            os.unlink(file.name)
    tag = f"{events / 1e6:g}M" if events >= 1_000_000 else f"{events // 1000}k"
    raw = results.add(f"tamper.raw_select.{tag}", f"Raw streaming SELECT of {rows:,} links "
                      "joined with their events, in chain order", min(raws), "s",
                      tag=f"SELC@{tag}")
    results.add(f"tamper.verify_against.{tag}", f"audit verify --against a signed checkpoint, "
                f"{events:,} events (every link recomputed from the genesis)", min(verifies),
                "s", baseline=raw)
    results.details[f"tamper.{tag}"] = {"events": events, "raw_select_s": raws,
                                        "verify_against_s": verifies,
                                        "links_per_second": events / min(verifies)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tamper", description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    results = Results()
    tamper_evidence(results, args.events)
    print()
    print(results.table())
    for failure in results.failures:
        print(failure, file=sys.stderr)
    return 1 if results.failures else 0


if __name__ == "__main__":
    sys.exit(main())
