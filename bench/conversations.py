"""What an SMS conversation costs intake: signed inbound messages posted to
`POST /v1/channels/sms` by several gateway connections at once, each message of a sender
answered in the webhook's answer (signature checked, redelivery looked up, the sealed
state read, the dialogue's turn taken, the state and the sealed replies kept), beside a
raw HTTP POST of the same bodies to a trivial HTTP server of the same machine, in the
same run: messages handled per second and the reply latency (p50, p99).

Each sender starts a conversation, chooses a language and a case type, and stops: the
turns every conversation goes through, none of which records a case (submissions have
their figures of their own). Intake runs as a process (tests/system.py), alone."""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import subprocess
import sys
import threading
import time

import requests

from bench.infra import Progress, percentile, phase
from bench.report import Results
from tests.system import System, free_port, wait_until

CLIENTS = 8
SECRET = "bench gateway secret"
SCRIPT = ("hello", "2", "1", "STOP")  # a greeting, English, a complaint, then stop
# The trivial server: it reads the body and answers a fixed JSON, nothing else (Python's
# threading HTTP server, as the services' is Python's eventlet one).
TRIVIAL_SERVER = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The head and the body go out in two writes: without this the second waits for the
    # client's delayed ACK (40 ms on Linux), which is no cost of HTTP itself.
    disable_nagle_algorithm = True
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b'{"replies": []}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass

ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def signed_message(sender: str, text: str, message_id: str) -> tuple[bytes, dict]:
    body = json.dumps({"from": sender, "text": text, "message_id": message_id}).encode()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return body, {"Content-Type": "application/json", "X-Signature": signature}


def post_all(url: str, senders_per_client: int, failures: list[str],
             progress: Progress) -> tuple[float, list[float]]:
    """Every client's senders' scripts posted in order; (seconds, each latency in ms)."""
    latencies: list[float] = []
    lock = threading.Lock()
    total = CLIENTS * senders_per_client * len(SCRIPT)

    def client(number: int) -> None:
        session, mine = requests.Session(), []
        for sender_index in range(senders_per_client):
            sender = f"+8551{number:02d}{sender_index:06d}"
            for position, text in enumerate(SCRIPT):
                body, headers = signed_message(sender, text, f"{sender}-{position}")
                started = time.perf_counter()
                answer = session.post(url, data=body, headers=headers, timeout=60)
                mine.append((time.perf_counter() - started) * 1000)
                if answer.status_code != 200:
                    failures.append(f"{answer.status_code}: {answer.text[:200]}")
        with lock:
            latencies.extend(mine)
            progress.update(f"{len(latencies)}/{total}")

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, latencies


def conversations(results: Results, senders_per_client: int = 25) -> None:
    count = CLIENTS * senders_per_client * len(SCRIPT)
    phase(f"Conversations: {CLIENTS} gateway connections, {count} signed inbound SMS")
    port = free_port()
    trivial = subprocess.Popen([sys.executable, "-c", TRIVIAL_SERVER, str(port)])
    system = System("bench_conversations", extra_env={
        "OURVOICE_SMS_INBOUND_SECRET": SECRET,
        "OURVOICE_CONVERSATION_MESSAGES_PER_MINUTE": "0"})
    system.create()
    try:
        system.start("intake")
        baseline_url = f"http://127.0.0.1:{port}/sms"
        wait_until(lambda: _answers(baseline_url), timeout=10, what="the trivial server")
        failures: list[str] = []
        raw_seconds, raw = post_all(baseline_url, senders_per_client, failures,
                                    Progress("raw POSTs"))
        seconds, handled = post_all(system.url("intake", "/v1/channels/sms"),
                                    senders_per_client, failures, Progress("inbound SMS"))
        if failures:
            results.failures.append(f"conversations: {len(failures)} failed, e.g. "
                                    f"{failures[0]}")
        raw_rate = results.add("conversations.raw_post", f"raw HTTP POSTs of the same bodies to "
                               f"a trivial server, {CLIENTS} clients", len(raw) / raw_seconds,
                               "/s", tag="raw POST")
        results.add("conversations.per_second", f"inbound SMS handled (signed, dialogue turn, "
                    f"sealed state and replies kept), {CLIENTS} clients",
                    len(handled) / seconds, "/s", baseline=raw_rate)
        for q in (50, 99):
            raw_q = results.add(f"conversations.raw_post_p{q}", f"raw POST latency p{q}",
                                percentile(raw, q), "ms", tag=f"raw p{q}")
            results.add(f"conversations.reply_p{q}", f"reply latency p{q} (the webhook's "
                        "answer, replies in it)", percentile(handled, q), "ms",
                        baseline=raw_q)
    finally:
        system.destroy()
        trivial.terminate()
        trivial.wait(timeout=10)


def _answers(url: str) -> bool:
    try:
        return requests.post(url, data=b"{}", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.conversations", description=__doc__)
    parser.add_argument("--senders-per-client", type=int, default=25)
    args = parser.parse_args(argv)
    results = Results()
    conversations(results, args.senders_per_client)
    print(results.table())
    return 1 if results.failures else 0


if __name__ == "__main__":
    sys.exit(main())
