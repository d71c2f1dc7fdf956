"""The operator's command meets a database that is not there or not answering with one
line naming it and exit status 1, never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest


def closed_port() -> int:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        return free.getsockname()[1]  # closed again as it leaves


@pytest.mark.parametrize("command", [["migrate", "status"], ["migrate"], ["staff", "list"],
                                     ["audit", "verify"]])
def test_a_database_that_does_not_answer_is_named_in_one_line(command):
    port = closed_port()
    env = {**os.environ, "POSTGRES_HOST": "127.0.0.1", "POSTGRES_PORT": str(port),
           "POSTGRES_DBNAME": "ourvoice_absent", "OURVOICE_ENV": "development"}
    done = subprocess.run([sys.executable, "-m", "ourvoice", *command], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert f"ourvoice_absent at 127.0.0.1:{port}" in done.stderr
    assert "refused" in done.stderr.lower()
