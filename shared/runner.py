"""Running one service as its own process: `python -m services.<name>`.

This is the single command per service, used alike by `make run`, by the tests and by the
container image, so what is tested is what runs."""

from __future__ import annotations

import os

import eventlet

eventlet.monkey_patch()  # before anything opens a socket

# psycopg's default wait function, in C, blocks the whole process on each query; the one
# built on (green) select cooperates with the other green threads. It is chosen when
# psycopg is first imported, so before anything imports it. Elsewhere (the CLI's
# rebuilds, the tests) there are no green threads and the C one is the faster.
os.environ.setdefault("PSYCOPG_WAIT_FUNC", "wait_select")

import importlib  # noqa: E402
import logging  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402

from nameko.runners import ServiceRunner  # noqa: E402

from shared import logcontext  # noqa: E402
from shared.config import SERVICES, check_production, service_amqp_uri  # noqa: E402
from shared.limits import SettingError  # noqa: E402
from shared.settings import settings  # noqa: E402


def config_for(service: str) -> dict:
    return {
        "AMQP_URI": service_amqp_uri(service),
        "WEB_SERVER_ADDRESS": settings().address(service),
        "max_workers": 16,
        "serializer": "json",
    }


def main(service: str) -> None:
    if service not in SERVICES:
        sys.exit(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
    check_production(service)
    logcontext.configure(service, settings().log_format)
    module = importlib.import_module(f"services.{service}.service")
    runner = ServiceRunner(config_for(service))
    runner.add_service(module.Service)

    def shutdown(signum, frame):
        # Stop in a green thread: the signal handler must not block the hub.
        eventlet.spawn(runner.stop)

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    try:
        runner.start()
    except SettingError as error:
        sys.exit(f"{service}: {error}")
    logging.getLogger(service).info("listening on http://%s", config_for(service)["WEB_SERVER_ADDRESS"])
    runner.wait()
