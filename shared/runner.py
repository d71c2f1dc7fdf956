"""Running one service as its own process: `python -m services.<name>`.

This is the single command per service, used alike by `ourvoice run`, by the tests and
by the container image, so what is tested is what runs. Each service's `__main__`
imports this module first (it makes the process green, before anything opens a socket or
imports psycopg), `check`s the settings, then imports its own `Service` class and hands
it to `main`."""

from __future__ import annotations

import os

import eventlet

eventlet.monkey_patch()  # before anything opens a socket

# psycopg's default wait function, in C, blocks the whole process on each query; the one
# built on (green) select cooperates with the other green threads. It is chosen when
# psycopg is first imported, so before anything imports it. Elsewhere (the CLI's
# rebuilds, the tests) there are no green threads and the C one is the faster.
os.environ.setdefault("PSYCOPG_WAIT_FUNC", "wait_select")

import logging  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402

from nameko.runners import ServiceRunner  # noqa: E402

from shared import logcontext, metrics  # noqa: E402
from shared.config import check_production, service_amqp_uri  # noqa: E402
from shared.settings import settings  # noqa: E402


def config_for(service: str) -> dict:
    return {
        "AMQP_URI": service_amqp_uri(service),
        "WEB_SERVER_ADDRESS": settings().address(service),
        "max_workers": 16,
        "serializer": "json",
    }


# A stop waits for the workers and threads under way, at most this long: then the process
# leaves (what it had not acknowledged is delivered again, and does nothing twice).
STOP_SECONDS = 3.0


def check(service: str) -> None:
    """Before the service's own modules are imported (some read settings as they load):
    every setting well formed, else the process stops naming each problem; then its logs
    and whether it counts metrics."""
    check_production(service)
    logcontext.configure(service, settings().log_format)
    metrics.switch(settings().metrics)
    # Every connection of the process (eventsourcing's pool and ours) names the service in
    # pg_stat_activity and the server's logs, so an operator sees who holds what. libpq
    # reads it from the environment; an operator's own value is kept.
    os.environ.setdefault("PGAPPNAME", f"ourvoice-{service}")


def refuse_a_taken_address(service: str, address: str) -> None:
    """Stop here, naming the address, when another process listens on it: else nameko's
    start fails on it with three tracebacks (the service listens on it alone, see
    `BoundedWebServer.start`)."""
    host, _, port = address.rpartition(":")
    probe = socket.socket()
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind((host, int(port)))
    except OSError as error:
        raise SystemExit(f"{service} cannot listen on {address}: {error.strerror}") from None
    finally:
        probe.close()


def refuse_a_refused_login(service: str, amqp_uri: str) -> None:
    """Stop here, naming the user, when the broker refuses the service's login or its
    virtual host: a setting is wrong, and nameko would try again every second for ever.
    A broker that does not answer yet is no reason to stop: nameko waits for it."""
    import amqp.exceptions
    import kombu
    import kombu.exceptions

    with kombu.Connection(amqp_uri, connect_timeout=5) as connection:
        try:
            connection.ensure_connection(max_retries=1)
        except (amqp.exceptions.AccessRefused, amqp.exceptions.NotAllowed) as refused:
            user = connection.userid
            raise SystemExit(f"{service} cannot use the broker as {user!r} on virtual host "
                             f"{connection.virtual_host!r}: {refused.reply_text}") from None
        except (OSError, kombu.exceptions.OperationalError):
            return


def main(service_class: type) -> None:
    """Run the service, `check`ed already, until it is told to stop."""
    service = service_class.name
    log = logging.getLogger(service)
    refuse_a_taken_address(service, config_for(service)["WEB_SERVER_ADDRESS"])
    refuse_a_refused_login(service, config_for(service)["AMQP_URI"])
    runner = ServiceRunner(config_for(service))
    runner.add_service(service_class)
    started = stopping = False

    def shutdown(signum, frame):
        # Once: a terminal's Ctrl-C and a supervisor's SIGTERM may both arrive, and
        # nameko's timers fail when told to stop twice. In a green thread: the signal
        # handler must not block the hub.
        nonlocal stopping
        if stopping:
            return
        stopping = True
        if not started:
            # Still starting (most often the broker refuses its login and nameko keeps
            # trying): it has taken no work, and nameko's stop of a container whose
            # consumers never started fails in its own machinery. What a relay had under
            # way is done again by the next process, as after `leave`.
            log.info("stopping (%s) before it had started", signal.Signals(signum).name)
            logging.shutdown()
            os._exit(0)
        log.info("stopping (%s)", signal.Signals(signum).name)
        eventlet.spawn(runner.stop)
        eventlet.spawn_after(STOP_SECONDS, leave)

    def leave():
        log.warning("not stopped within %.0f s: leaving now", STOP_SECONDS)
        logging.shutdown()
        os._exit(0)

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    runner.start()
    started = True
    log.info("listening on http://%s", config_for(service)["WEB_SERVER_ADDRESS"])
    runner.wait()
