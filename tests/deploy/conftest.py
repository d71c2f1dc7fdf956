"""The deployment tests build images and run the Compose stack for minutes, so only
`make test-deploy` runs them (it prepares the engine and images first and sets
OURVOICE_TEST_DEPLOY=1); `make test` leaves this folder alone."""

from __future__ import annotations

import os
import time

import pytest

from tests.deploy.stack import FIGURES, Stack

if os.environ.get("OURVOICE_TEST_DEPLOY") != "1":
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(scope="session")
def stack():
    stack = Stack()
    # A run stopped half-way leaves its containers and volumes: start from nothing.
    stack.compose("down", "--volumes", "--remove-orphans")
    started = time.monotonic()
    stack.compose("up", "-d", "--no-build")
    stack.wait_healthy()
    FIGURES["from `up` to every service healthy"] = f"{time.monotonic() - started:.1f} s"
    try:
        yield stack
    finally:
        if os.environ.get("OURVOICE_TEST_DEPLOY_KEEP") != "1":
            stack.compose("down", "--volumes", "--remove-orphans")


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("deployment figures")
        for name, value in FIGURES.items():
            terminalreporter.write_line(f"{name}: {value}")
