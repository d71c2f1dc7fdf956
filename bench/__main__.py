"""`python -m bench`: run every benchmark, print the table, write bench/results/.

Each phase runs even if an earlier one failed, so one broken part still leaves the other
figures; the exit status is non-zero if anything failed.

`--scale` multiplies every duration and count; the stored-event counts of the figures at
scale (1,000,000 events by default) are multiplied as well by OURVOICE_BENCH_SCALE, so
`OURVOICE_BENCH_SCALE=0.1 make bench` grows the store to 100,000 events only."""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable

from bench.at_scale import at_scale, scale_factor
from bench.broker import publish_baselines
from bench.case_file import case_file
from bench.conversations import conversations
from bench.end_to_end import end_to_end
from bench.infra import foreign_activity
from bench.notifications import notifications
from bench.observability import observability
from bench.postgres import event_appends, raw_commits
from bench.relay import relay_throughput, user_id_cost
from bench.replay import replay
from bench.report import Results, host_environment
from bench.tamper import tamper_evidence
from bench.uploads import uploads


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply every duration and count (e.g. 0.2 for a quick check)")
    args = parser.parse_args(argv)
    scale = args.scale

    results = Results(environment=host_environment())
    phases: list[tuple[str, Callable[[], None]]] = [
        ("raw commits", lambda: raw_commits(results, 5 * scale)),
        ("event appends", lambda: event_appends(results, 5 * scale)),
        ("raw publishing", lambda: publish_baselines(results, 5 * scale)),
        ("relay", lambda: relay_throughput(results, max(500, round(20_000 * scale)))),
        ("user_id", lambda: user_id_cost(results, max(500, round(5_000 * scale)))),
        # A light rate shows the latency of the path itself, 50/s what load adds to it.
        ("end to end", lambda: end_to_end(results, rates=(10, 50, 200), steady_seconds=10 * scale,
                                          threads=16, full_seconds=15 * scale)),
        # The same full-speed load with JSON logs and metrics, and without, turn about;
        # /health/ready idle and under load.
        ("observability", lambda: observability(
            results, seconds=15 * scale, probes_per_service=max(50, round(300 * scale)))),
        # Appends to the stores of each size are timed for at most 20 s in all; the sizes
        # follow OURVOICE_BENCH_SCALE.
        ("at scale", lambda: at_scale(results, 20 * scale, scale_factor() * scale)),
        # The reports' read model, fed by every store's public events, rebuilt from a
        # million of them (sizes follow OURVOICE_BENCH_SCALE too).
        ("replay", lambda: replay(results, round(1_000_000 * scale_factor() * scale))),
        # `audit verify --against` a checkpoint over a store of a million events.
        ("tamper evidence", lambda: tamper_evidence(results,
                                                    round(1_000_000 * scale_factor() * scale))),
        ("notifications", lambda: notifications(results, cases=max(100, round(1000 * scale)),
                                                seconds=20 * scale)),
        # A queue page of an office of 10,000 open cases, and case files, over HTTP.
        ("case file", lambda: case_file(results, reads=max(50, round(200 * scale)))),
        # 8 clients uploading 10 MB photos, beside a raw COPY of the same bytes.
        ("uploads", lambda: uploads(results, per_client=max(1, round(3 * scale)))),
        # Signed inbound SMS from 8 gateway connections, beside raw POSTs to a trivial
        # server.
        ("conversations", lambda: conversations(results,
                                                senders_per_client=max(5, round(25 * scale)))),
    ]
    started = time.monotonic()
    disturbed: dict[str, Counter[str]] = {}
    results.environment["load average at start"] = round(os.getloadavg()[0], 2)
    for name, run in phases:
        others = foreign_activity()
        try:
            run()
        except Exception as error:
            traceback.print_exc()
            results.failures.append(f"{name}: {type(error).__name__}: {error}")
        others |= foreign_activity()  # the larger count of each kind, before or after
        if others:
            disturbed[name] = others
    results.environment["load average at end"] = round(os.getloadavg()[0], 2)
    results.environment["bench seconds"] = round(time.monotonic() - started, 1)
    if disturbed:
        results.notes.append(
            "Other Our Voice processes shared this machine during: "
            + "; ".join(f"{name} ({', '.join(f'{n} {kind}' for kind, n in seen.items())})"
                        for name, seen in disturbed.items())
            + ". Figures of those phases are likely lower than on a quiet machine."
        )

    as_json, as_md = results.write()
    print()
    print(results.table())
    print(f"\nWritten to {as_json.relative_to(as_json.parents[2])} and "
          f"{as_md.relative_to(as_md.parents[2])}")
    return 1 if results.failures else 0


if __name__ == "__main__":
    sys.exit(main())
