"""`python -m bench.notifications`: how fast notifications reach a local SMTP server and a
local webhook receiver, and how long from the relay's publication of an event to its
delivery.

Throughput: cases are submitted while notifications is stopped, so its queue holds the
whole backlog; then notifications starts and the figure is deliveries / seconds from its
start until the receivers hold the last one (recording the notices and sending them).
Latency: at a light rate, from the moment an event appears on the exchange (a probe
queue bound to `#`) to the moment the receiver has the message about it."""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

from kombu import Queue

from shared.topology import EVENTS
from tests.system import ROOT, System, complaint, submit, wait_until
from tests.test_notifications_receivers import HttpReceiver, Mailbox


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def citizen(n: int) -> dict:
    return complaint(complainant={"anonymous": False, "name": f"Bench {n}",
                                  "email": f"bench{n}@example.org"}, description=f"bench {n}")


def backlog(system: System, bodies: list[dict]) -> None:
    system.stop("notifications")
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda body: submit(system, body), bodies))
    wait_until(lambda: system.scalar("SELECT count(*) FROM routing_office_queue") >= len(bodies),
               timeout=300, what="every case routed")
    time.sleep(1)  # the last CaseRouted published to notifications' queue


def throughput(system: System, count: int, received, label: str) -> float:
    started = time.monotonic()
    system.start("notifications", wait=False)
    wait_until(lambda: received() >= count, timeout=600, interval=0.01, what=label)
    seconds = time.monotonic() - started
    rate = count / seconds
    print(f"{label:<44} {count:>6} in {seconds:6.2f} s  {rate:8.1f}/s", flush=True)
    wait_until(lambda: system.healthy("notifications"), timeout=60)
    return rate


def latency(system: System, mailbox: Mailbox, http: HttpReceiver, rate: float,
            seconds: float) -> None:
    with system.broker() as connection:
        probe = Queue("probe.bench-notifications", exchange=EVENTS, routing_key="#",
                      durable=False)(connection.default_channel)
        probe.declare()
        published: dict[str, float] = {}
        codes: dict[str, str] = {}

        def drain():
            while (message := probe.get(no_ack=True)) is not None:
                body = json.loads(message.body)
                published.setdefault(body["event_id"], time.monotonic())
                if body["event_type"] == "CaseSubmitted":
                    codes[body["tracking_code"]] = body["event_id"]

        n = 0
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            submit(system, citizen(100_000 + n))
            n += 1
            drain()
            time.sleep(max(0.0, start + n / rate - time.monotonic()))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(mailbox.mails) < n:
            drain()
            time.sleep(0.01)
        drain()
        probe.delete()
    # Email: CaseSubmitted on the exchange -> the "case received" email at the server.
    email = []
    for mail in list(mailbox.mails):
        code = mail.message["Subject"].rsplit(" ", 1)[-1]
        if code in codes and codes[code] in published:
            email.append(mail.at - published[codes[code]])
    # Webhook: any event on the exchange -> its POST at the receiver.
    hooks = [r.at - published[r.json()["event_id"]] for r in http.requests
             if r.json()["event_id"] in published]
    for label, values in (("relay -> SMTP server (case received)", email),
                          ("relay -> webhook receiver (every event)", hooks)):
        if values:
            print(f"{label:<44} n={len(values):>5}  p50 {percentile(values, 50) * 1000:6.0f} ms"
                  f"  p95 {percentile(values, 95) * 1000:6.0f} ms"
                  f"  p99 {percentile(values, 99) * 1000:6.0f} ms", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.notifications", description=__doc__)
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=10.0, help="cases/s for the latency")
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args(argv)

    mailbox, http = Mailbox(), HttpReceiver()
    mailbox.start()
    http.start()
    system = System("bench_notifications", {"SMTP_PORT": str(mailbox.port),
                                            "OURVOICE_SUBMISSIONS_PER_MINUTE": "0"})
    system.create()
    try:
        system.start_all()
        # Email: each case calls for two emails to its citizen (received, routed).
        backlog(system, [citizen(n) for n in range(args.cases)])
        throughput(system, 2 * args.cases, lambda: len(mailbox.mails), "emails to the SMTP server")
        # Webhooks: anonymous cases, one receiver for Phnom Penh; CaseSubmitted and CaseRouted.
        done = subprocess.run([str(ROOT / ".venv" / "bin" / "ourvoice"), "webhooks", "add",
                               "--url", http.url("/hook"), "--area", "12"], env=system.env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        time.sleep(1)
        before = len(http.requests)
        backlog(system, [complaint(description=f"hook {n}") for n in range(args.cases)])
        throughput(system, 2 * args.cases, lambda: len(http.requests) - before,
                   "webhook POSTs to the receiver")
        # Latency is measured on a quiet system: the backlogs above fully worked off.
        wait_until(lambda: system.settled() and not system.scalar(
            "SELECT count(*) FROM notifications_outbox WHERE next_at IS NOT NULL"),
            timeout=600, interval=0.5, what="the backlog worked off")
        mailbox.mails.clear()
        http.requests.clear()
        latency(system, mailbox, http, args.rate, args.seconds)
    finally:
        system.destroy()
        mailbox.stop()
        http.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
