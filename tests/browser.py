"""A real browser for the tests: headless Chromium driven over its DevTools protocol (CDP).

Debian's ``chromium`` and a websocket (``websocket-client``, a test extra); nothing else.
One page per ``Browser``; every call waits for its answer, and navigations wait for the
page's load event. When Chromium is missing the tests fail saying so (``require_chromium``):
a browser test that skips in CI tests nothing.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

__all__ = ["Browser", "require_chromium"]

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def require_chromium() -> str:
    """The Chromium executable; fails the test (never skips) when there is none."""
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(
        "the console's browser tests need Chromium: apt-get install chromium "
        "(scripts/test.sh installs it)",
        pytrace=False,
    )


class BrowserError(AssertionError):
    pass


class Browser:
    """One headless Chromium with one page."""

    def __init__(self, profile: Path, *, width: int = 1280, height: int = 900) -> None:
        from websocket import create_connection

        profile.mkdir(parents=True, exist_ok=True)
        args = [
            require_chromium(),
            "--headless",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-gpu",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-sync",
            "--password-store=basic",
            "--hide-scrollbars",
            "about:blank",
        ]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium's sandbox refuses to run as root
        self.log = profile / "chromium.log"
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self.log.open("w"))
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise BrowserError(f"chromium did not start:\n{self.log.read_text()[-2000:]}")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
            targets = json.load(answer)
        page = next(t for t in targets if t["type"] == "page")
        self._ws = create_connection(page["webSocketDebuggerUrl"], timeout=60, suppress_origin=True)
        self._ids = itertools.count(1)
        self._events: list[dict[str, Any]] = []
        self.send("Page.enable")
        self.send("Runtime.enable")

    # -- the protocol ---------------------------------------------------------------------
    def send(self, method: str, **params: Any) -> dict[str, Any]:
        ident = next(self._ids)
        self._ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv())
            if message.get("id") == ident:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self._events.append(message)

    def _wait_event(self, name: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for n, event in enumerate(self._events):
                if event["method"] == name:
                    del self._events[: n + 1]
                    return event
            if time.monotonic() > deadline:
                raise BrowserError(f"no {name} within {timeout}s")
            self._ws.settimeout(max(0.1, deadline - time.monotonic()))
            message = json.loads(self._ws.recv())
            if "method" in message:
                self._events.append(message)

    # -- what a person does ---------------------------------------------------------------
    def goto(self, url: str) -> None:
        self._events.clear()
        self.send("Page.navigate", url=url)
        self._wait_event("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (what the DOM holds)."""
        result = self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def fill(self, selector: str, text: str) -> None:
        found = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            f" if (!e) return false; e.focus(); e.value = {json.dumps(text)}; return true; }})()"
        )
        if not found:
            raise BrowserError(f"no {selector} on {self.url}")

    def click(self, selector: str, *, navigates: bool = True) -> None:
        """Click the element (a link or a button) and, by default, wait for the next page."""
        self._events.clear()
        found = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " if (!e) return false; e.click(); return true; })()"
        )
        if not found:
            raise BrowserError(f"no {selector} on {self.url}")
        if navigates:
            self._wait_event("Page.loadEventFired")

    def press_tab(self) -> None:
        for kind in ("rawKeyDown", "keyUp"):
            self.send(
                "Input.dispatchKeyEvent",
                type=kind,
                key="Tab",
                code="Tab",
                windowsVirtualKeyCode=9,
                nativeVirtualKeyCode=9,
            )

    def text(self, selector: str = "body") -> str:
        return self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " return e ? e.innerText : ''; })()"
        )

    def wait_for_text(self, needle: str, selector: str = "body", timeout: float = 120) -> str:
        """Wait until the element's text holds ``needle`` (the page may reload itself)."""
        deadline = time.monotonic() + timeout
        seen = ""
        while time.monotonic() < deadline:
            try:
                seen = self.text(selector)
            except BrowserError:  # between two loads of a refreshing page
                seen = ""
            if needle in seen:
                return seen
            time.sleep(0.3)
        raise BrowserError(f"{needle!r} never appeared in {selector} of {self.url}:\n{seen}")

    @property
    def url(self) -> str:
        return str(self.evaluate("location.href"))

    def viewport(self, width: int, height: int, *, mobile: bool = False) -> None:
        self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=2 if mobile else 1,
            mobile=mobile,
        )

    def screenshot(self, path: Path, *, full_page: bool = False) -> None:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
        data = self.send("Page.captureScreenshot", **params)["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        ws = getattr(self, "_ws", None)
        if ws is not None:
            ws.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
