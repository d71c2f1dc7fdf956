"""Notifications: how fast notices reach a local SMTP server and a local webhook
receiver, and how long from the relay's publication of an event to its delivery.

Throughput: cases are submitted while notifications is stopped, so its queue holds the
whole backlog; then notifications starts and the figure is deliveries / seconds from its
start until the receivers hold the last one (recording the notices and sending them).
Each stands beside a raw baseline measured against the same receiver in the same run:
plain `smtplib` sends over as many kept-open connections as the service uses, and plain
HTTP POSTs of an event-sized body.
Latency: at a light rate, from the moment an event appears on the exchange (a probe
queue bound to `#`) to the moment the receiver has the message about it.

`python -m bench.notifications [--cases N]` runs it alone; `notifications(results, cases)`
is the phase of `python -m bench`."""

from __future__ import annotations

import argparse
import json
import smtplib
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage

import requests
from kombu import Queue

from bench.infra import Progress, percentile, phase
from bench.report import Figure, Results
from services.notifications.channels import SmtpSettings
from shared.topology import EVENTS
from tests.receivers import HttpReceiver, Mailbox
from tests.system import ROOT, System, complaint, submit, wait_until

CONNECTIONS = SmtpSettings.connections  # the service's own number of SMTP connections
RAW_SECONDS = 3.0


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


def in_parallel(seconds: float, step, workers: int) -> int:
    """Call `step` back to back in `workers` threads for `seconds`; how many calls ran.
    `step` gets what it returned last time in its thread (None at first): a connection
    it keeps open."""
    stopping = threading.Event()
    done = [0] * workers

    def work(n: int) -> None:
        resource = None
        while not stopping.is_set():
            resource = step(resource)
            done[n] += 1

    threads = [threading.Thread(target=work, args=(n,), daemon=True) for n in range(workers)]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stopping.set()
    for thread in threads:
        thread.join(timeout=30)
    return sum(done)


def raw_smtp(mailbox: Mailbox, results: Results) -> Figure:
    """Plain smtplib, one kept-open connection per thread, as many as the service has."""
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = ("no-reply@ourvoice.local",
                                                          "raw@example.org", "raw KH-0000-0000")
    message.set_content("ករណីរបស់អ្នកត្រូវបានទទួល។ " * 8)

    def send(connection):
        connection = connection or smtplib.SMTP("127.0.0.1", mailbox.port,
                                                local_hostname="bench.local")
        connection.send_message(message)
        return connection

    before = len(mailbox.mails)
    sent = in_parallel(RAW_SECONDS, send, CONNECTIONS)
    wait_until(lambda: len(mailbox.mails) - before >= sent, timeout=30, what="raw mails")
    return results.add("notify.raw.smtp", f"Raw smtplib sends, {CONNECTIONS} kept-open "
                       "connections", sent / RAW_SECONDS, "/s", tag="SMTP")


def raw_posts(http: HttpReceiver, results: Results) -> Figure:
    body = json.dumps(complaint(description="x" * 600)).encode()

    def post(session):
        session = session or requests.Session()
        session.post(http.url("/raw"), data=body, timeout=10,
                     headers={"Content-Type": "application/json"})
        return session

    sent = in_parallel(RAW_SECONDS, post, CONNECTIONS)
    return results.add("notify.raw.http", f"Raw HTTP POSTs of an event-sized body, "
                       f"{CONNECTIONS} keep-alive sessions", sent / RAW_SECONDS, "/s", tag="POST")


def throughput(system: System, count: int, received, label: str) -> float:
    progress = Progress(label)
    started = time.monotonic()
    system.start("notifications", wait=False)

    def arrived() -> bool:
        got = received()
        progress.update(f"{got:,}/{count:,}")
        return got >= count

    wait_until(arrived, timeout=600, interval=0.01, what=label)
    seconds = time.monotonic() - started
    progress.done(f"{count:,} in {seconds:.1f} s, {count / seconds:,.0f}/s")
    wait_until(lambda: system.healthy("notifications"), timeout=60)
    return count / seconds


class Probe:
    """A queue bound to every event, drained by a thread of its own as events arrive, so
    the moment an event is seen is within a few milliseconds of its publication (drained
    between submissions instead, it was up to a submission's interval late, and a
    webhook POST could seem to arrive before its event)."""

    def __init__(self, system: System):
        self.system = system
        self.published: dict[str, float] = {}
        self.codes: dict[str, str] = {}  # tracking code -> its CaseSubmitted's event id
        self.ready, self.stopping = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._drain, daemon=True)

    def __enter__(self) -> Probe:
        self.thread.start()
        if not self.ready.wait(30):
            raise RuntimeError("the probe queue was not declared within 30 s")
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.thread.join(timeout=30)

    def _seen(self, message) -> None:
        body = json.loads(message.body)
        self.published.setdefault(body["event_id"], time.monotonic())
        if body["event_type"] == "CaseSubmitted":
            self.codes[body["tracking_code"]] = body["event_id"]

    def _drain(self) -> None:
        with self.system.broker() as connection:
            probe = Queue("probe.bench-notifications", exchange=EVENTS, routing_key="#",
                          durable=False, auto_delete=True)
            with connection.Consumer(probe, on_message=self._seen, no_ack=True):
                self.ready.set()
                while not self.stopping.is_set():
                    try:
                        connection.drain_events(timeout=0.1)
                    except TimeoutError:
                        pass


def latency(system: System, mailbox: Mailbox, http: HttpReceiver, rate: float,
            seconds: float) -> tuple[list[float], list[float]]:
    """Seconds from each event on the exchange to its email, and to its webhook POST."""
    progress = Progress(f"latency at {rate:g} cases/s")
    with Probe(system) as probe:
        n = 0
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            submit(system, citizen(100_000 + n))
            n += 1
            progress.update(f"{n} submitted")
            time.sleep(max(0.0, start + n / rate - time.monotonic()))
        wait_until(lambda: len(mailbox.mails) >= n, timeout=30, interval=0.01,
                   what="the latency run's emails")
        time.sleep(0.5)  # the last webhook POSTs, which follow their events as closely
    progress.done(f"{n} cases")
    published, codes = probe.published, probe.codes
    # Email: CaseSubmitted on the exchange -> the "case received" email at the server.
    email = []
    for mail in list(mailbox.mails):
        code = mail.message["Subject"].rsplit(" ", 1)[-1]
        if code in codes and codes[code] in published:
            email.append(mail.at - published[codes[code]])
    # Webhook: any event on the exchange -> its POST at the receiver.
    hooks = [r.at - published[r.json()["event_id"]] for r in http.requests
             if r.path == "/hook" and r.json()["event_id"] in published]
    return email, hooks


def notifications(results: Results, cases: int = 1000, rate: float = 10.0,
                  seconds: float = 20.0) -> None:
    phase(f"Notifications: backlogs of {cases:,} cases to a local SMTP server and webhook "
          "receiver, then latency")
    mailbox, http = Mailbox(), HttpReceiver()
    mailbox.start()
    http.start()
    system = System("bench_notifications", {"SMTP_PORT": str(mailbox.port),
                                            "OURVOICE_SUBMISSIONS_PER_MINUTE": "0"})
    system.create()
    try:
        smtp, posts = raw_smtp(mailbox, results), raw_posts(http, results)
        mailbox.mails.clear()
        system.start_all()
        # Email: each case calls for two emails to its citizen (received, routed).
        backlog(system, [citizen(n) for n in range(cases)])
        results.add("notify.email", "Notifications: emails sent from a backlog, to the SMTP "
                    "server", throughput(system, 2 * cases, lambda: len(mailbox.mails),
                                         "emails to the SMTP server"), "/s", baseline=smtp)
        # Webhooks: anonymous cases, one receiver for Phnom Penh; CaseSubmitted and CaseRouted.
        done = subprocess.run([str(ROOT / ".venv" / "bin" / "ourvoice"), "webhooks", "add",
                               "--url", http.url("/hook"), "--area", "12"], env=system.env,
                              capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"ourvoice webhooks add: {done.stderr}")
        time.sleep(1)
        def hooked() -> int:
            return len(http.at("/hook", accepted_only=False))

        before = hooked()
        backlog(system, [complaint(description=f"hook {n}") for n in range(cases)])
        results.add("notify.webhooks", "Notifications: webhook POSTs from a backlog, to the "
                    "receiver", throughput(system, 2 * cases, lambda: hooked() - before,
                                           "webhook POSTs to the receiver"), "/s",
                    baseline=posts)
        # Latency is measured on a quiet system: the backlogs above fully worked off.
        wait_until(lambda: system.settled() and not system.scalar(
            "SELECT count(*) FROM notifications_outbox WHERE next_at IS NOT NULL"),
            timeout=600, interval=0.5, what="the backlog worked off")
        mailbox.mails.clear()
        http.requests.clear()
        email, hooks = latency(system, mailbox, http, rate, seconds)
        for key, label, values in (
                ("notify.latency.email", "event on the exchange to its email", email),
                ("notify.latency.webhook", "event on the exchange to its webhook POST", hooks)):
            for p in (50, 99):
                results.add(f"{key}.p{p}", f"Notifications latency p{p} at {rate:g} cases/s, "
                            f"{label}", percentile(values, p) * 1000, "ms")
        results.details["notifications"] = {
            "cases": cases, "emails": 2 * cases, "webhook_posts": 2 * cases,
            "latency_samples": {"email": len(email), "webhook": len(hooks)},
        }
    finally:
        system.destroy()
        mailbox.stop()
        http.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.notifications", description=__doc__)
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=10.0, help="cases/s for the latency")
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args(argv)
    results = Results()
    notifications(results, args.cases, args.rate, args.seconds)
    print()
    print(results.table())
    return 1 if results.failures else 0


if __name__ == "__main__":
    sys.exit(main())
