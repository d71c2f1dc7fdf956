"""docs/asyncapi.yaml through the reference AsyncAPI parser (`@asyncapi/parser`, the one
AsyncAPI's own tools use), pinned with its dependencies in tests/asyncapi/package-lock.json
and installed from npm by the first run into tests/asyncapi/node_modules (ignored by git).
The document must have no error; its warnings are printed, for a reader to judge."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.test_notifications_asyncapi import DOCUMENT

HERE = Path(__file__).resolve().parent / "asyncapi"
MODULES = HERE / "node_modules"
# The lock file the installed modules were made from: another lock, another install.
STAMP = MODULES / ".installed-from"


@pytest.fixture(scope="module")
def parser() -> Path:
    for tool in ("node", "npm"):
        assert shutil.which(tool), f"{tool} is needed to run the AsyncAPI parser (apt-get install nodejs npm)"
    lock = hashlib.sha256((HERE / "package-lock.json").read_bytes()).hexdigest()
    if not STAMP.exists() or STAMP.read_text() != lock:
        # Exactly the lock's packages, their integrity checked; no install scripts.
        subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
                       cwd=HERE, check=True, capture_output=True, timeout=300)
        STAMP.write_text(lock)
    return HERE / "validate.mjs"


def diagnostics(parser: Path, document: Path) -> list[dict]:
    done = subprocess.run(["node", str(parser), str(document)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_the_asyncapi_document_has_no_error_for_the_reference_parser(parser):
    found = diagnostics(parser, DOCUMENT)
    for d in found:
        if d["severity"] != "error":
            print(f"{d['severity']}: {d['code']} at {d['path']}: {d['message']}")
    errors = [f"{d['code']} at {d['path']}: {d['message']}" for d in found if d["severity"] == "error"]
    assert errors == [], "\n".join(errors)


def test_the_parser_finds_what_is_wrong(parser, tmp_path):
    """The verdict above means something: the same document with the delivery mode on the
    message (where the AMQP binding has no such field) is refused."""
    broken = yaml.safe_load(DOCUMENT.read_text(encoding="utf-8"))
    message = broken["components"]["messages"]["CaseSubmitted"]
    message["bindings"] = {"amqp": {"deliveryMode": 2, "bindingVersion": "0.3.0"}}
    path = tmp_path / "asyncapi.yaml"
    path.write_text(yaml.safe_dump(broken, allow_unicode=True), encoding="utf-8")
    errors = [d for d in diagnostics(parser, path) if d["severity"] == "error"]
    assert any("deliveryMode" in d["message"] for d in errors), errors
