"""A real headless browser for the tests of the pages we serve (the dashboard, the staff
console): Debian's chromium, driven over the DevTools protocol, so no Playwright and no
browser download is needed."""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
import websocket

from tests.system import wait_until

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1280,1800", "--remote-debugging-port=0")


def chromium() -> str:
    """Debian's chromium, installed on first use where this runs as root (as CI does)."""
    found = shutil.which("chromium")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        quiet = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=quiet, timeout=900)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium", "fonts-khmeros"],
                       check=True, env=quiet, timeout=1800)
        found = shutil.which("chromium")
    if found is None:
        pytest.fail("the browser tests need Debian's chromium: apt-get install chromium")
    return found


class Page:
    """One tab, driven over the DevTools protocol. The events it sends while we wait for
    an answer are kept in `events` (those of the domains enabled, such as Network)."""

    def __init__(self, socket_url: str):
        self.socket = websocket.create_connection(socket_url, timeout=30, suppress_origin=True)
        self.ids = itertools.count(1)
        self.events: list[dict] = []

    def call(self, method: str, **params) -> dict:
        sent = next(self.ids)
        self.socket.send(json.dumps({"id": sent, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == sent:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return message["result"]
            if "method" in message:
                self.events.append(message)

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, what: str, timeout: float = 30.0):
        """Until the expression is truthy in the page; its value. On timeout, what the
        page says, to see why."""
        try:
            return wait_until(lambda: self.evaluate(expression), timeout=timeout,
                              interval=0.1, what=what)
        except AssertionError as timed_out:
            shown = self.evaluate("document.body ? document.body.innerText : ''") or ""
            raise AssertionError(f"{timed_out}; the page shows: {shown[:3000]}") from None

    def navigate(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def viewport(self, width: int, height: int, *, mobile: bool = False) -> None:
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=mobile)

    def screenshot(self, path: Path, *, whole: bool = True) -> Path:
        """The page as a PNG; `whole`: all of it, not only what the viewport shows."""
        params = {}
        if whole:
            size = self.call("Page.getLayoutMetrics")["cssContentSize"]
            params = {"captureBeyondViewport": True, "clip": {
                "x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", **params)["data"]))
        return path


@contextmanager
def open_browser():
    """A headless chromium of its own (a fresh profile) and its first tab."""
    profile = tempfile.mkdtemp(prefix="ourvoice-chromium-")
    process = subprocess.Popen([chromium(), *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = Path(profile) / "DevToolsActivePort"
        wait_until(lambda: port_file.exists() and port_file.read_text().strip(), timeout=60,
                   what="chromium listening for DevTools")
        port = int(port_file.read_text().split()[0])
        tabs = requests.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
        page = Page(next(t for t in tabs if t["type"] == "page")["webSocketDebuggerUrl"])
        page.call("Page.enable")
        try:
            yield page
        finally:
            page.socket.close()
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(profile, ignore_errors=True)
