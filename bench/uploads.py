"""What a citizen's photos cost intake: 8 clients uploading 10 MB photos at once, each to
a case of its own, through the real endpoint (spooled, cleaned, sealed in parts, stored,
recorded), beside a raw psycopg COPY of the same bytes into a plain bytea table of the
same database in the same run; intake's peak resident memory (VmHWM) before and after;
and the cleaning alone (services.intake.evidence.clean, in this process) per megapixel.

Intake runs as a process (tests/system.py), alone: an upload needs no other service."""

from __future__ import annotations

import argparse
import io
import os
import sys
import threading
import time
from pathlib import Path

import psycopg
import requests

from bench.infra import Progress, phase
from bench.report import Results
from services.intake import evidence
from tests.system import System, submit

CLIENTS = 8
PHOTO_BYTES = 10_000_000


def noisy_photo(target: int = PHOTO_BYTES) -> tuple[bytes, int]:
    """A JPEG of about `target` bytes (noise compresses badly, as a sensor's does in low
    light), and its pixel count."""
    from PIL import Image

    width, height = 4000, 3000
    image = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    quality = 95
    while True:
        out = io.BytesIO()
        image.save(out, "JPEG", quality=quality)
        if out.tell() <= target * 1.15 or quality <= 40:
            return out.getvalue(), width * height
        quality -= 10


def peak_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines()
                    if line.startswith("VmHWM:")).split()[1])


def uploads(results: Results, per_client: int = 3) -> None:
    phase(f"Uploads: {CLIENTS} clients, {per_client} photos of ~10 MB each")
    data, pixels = noisy_photo()
    megabytes = len(data) / 1e6
    system = System("bench_uploads", extra_env={
        "OURVOICE_SUBMISSIONS_PER_MINUTE": "0", "OURVOICE_ATTACHMENTS_PER_DAY": "100000",
        "OURVOICE_ATTACHMENTS_PER_CASE": "100000",
        "OURVOICE_ATTACHMENT_BYTES_PER_CASE": str(1 << 40)})
    system.create()
    try:
        system.start("intake")
        pid = system.processes["intake"].pid
        cases = [submit(system) for _ in range(CLIENTS)]
        failures: list[str] = []
        progress = Progress("uploading")
        done = [0]

        def client(case: dict) -> None:
            session = requests.Session()
            url = system.url("intake", f"/v1/cases/{case['tracking_code']}/attachments")
            for _ in range(per_client):
                answer = session.post(url, data=data, timeout=600, headers={
                    "Authorization": f"Bearer {case['citizen_token']}",
                    "Content-Type": "image/jpeg"})
                if answer.status_code != 201:
                    failures.append(f"{answer.status_code}: {answer.text[:200]}")
                done[0] += 1
                progress.update(f"{done[0]}/{CLIENTS * per_client}")

        before = peak_kb(pid)
        started = time.perf_counter()
        threads = [threading.Thread(target=client, args=(case,)) for case in cases]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
        progress.done(f"{CLIENTS * per_client} uploads in {seconds:.1f} s")
        after = peak_kb(pid)
        if failures:
            results.failures.append(f"uploads: {len(failures)} failed, e.g. {failures[0]}")
        count = CLIENTS * per_client
        raw = raw_copy(system, data, count)
        baseline = results.add("uploads.raw_copy", f"raw COPY of {count} x {megabytes:.1f} MB "
                               "into a bytea table", count * megabytes / raw, "MB/s",
                               tag="raw copy")
        results.add("uploads.throughput", f"uploads of {megabytes:.1f} MB photos, {CLIENTS} "
                    "clients (cleaned, sealed, stored, recorded)", count * megabytes / seconds,
                    "MB/s", baseline=baseline)
        results.add("uploads.per_second", "the same uploads, files per second", count / seconds,
                    "/s")
        results.add("uploads.peak_rss", "intake's peak resident memory during the uploads",
                    after / 1024, "MiB")
        results.add("uploads.peak_rss_growth", "its growth over the peak before them",
                    (after - before) / 1024, "MiB")
    finally:
        system.destroy()
    limits = evidence.Limits(max_bytes=len(data) + 1, max_pixels=40_000_000, max_side=4096)
    timings = []
    for _ in range(3):
        t0 = time.perf_counter()
        evidence.clean(io.BytesIO(data), limits)
        timings.append(time.perf_counter() - t0)
    results.add("uploads.clean_per_megapixel", "cleaning a photo (evidence.clean), per "
                "megapixel", min(timings) / (pixels / 1e6) * 1000, "ms")


def raw_copy(system: System, data: bytes, count: int) -> float:
    """Seconds to COPY `count` rows of `data` into a plain table, one connection."""
    conninfo = f"host=127.0.0.1 port={system.pg_port} user=postgres dbname={system.dbname}"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("CREATE TABLE bench_files (id serial PRIMARY KEY, body bytea NOT NULL)")
        started = time.perf_counter()
        for _ in range(count):
            with conn.cursor().copy("COPY bench_files (body) FROM STDIN") as copy:
                copy.write_row((data,))
        return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.uploads", description=__doc__)
    parser.add_argument("--per-client", type=int, default=3)
    args = parser.parse_args(argv)
    results = Results()
    uploads(results, args.per_client)
    print(results.table())
    return 1 if results.failures else 0


if __name__ == "__main__":
    sys.exit(main())
