"""Headless Chromium (Debian's ``chromium``) for the report's tests: the DOM after load, with
JavaScript on or off, and screenshots at a given window size."""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--hide-scrollbars", "--mute-audio",
)


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, ("the report's browser tests need Debian's chromium: apt-get install -y chromium "
                  "(.ci/run installs it)")
    return path


def _run(args: list[str], *, js: bool = True) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        flags = [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]
        if not js:
            flags.append("--blink-settings=scriptEnabled=false")
        return subprocess.run([chromium_path(), *flags, *args], capture_output=True, text=True,
                              timeout=120, check=False)


def dump_dom(page: Path, *, fragment: str = "", js: bool = True) -> str:
    """The page's DOM after load (scripts run when ``js``), as HTML text."""
    url = page.resolve().as_uri() + (f"#{fragment}" if fragment else "")
    proc = _run(["--dump-dom", url], js=js)
    assert proc.returncode == 0 and "<html" in proc.stdout, proc.stderr[-2000:]
    return proc.stdout


def screenshot(page: Path, out: Path, *, width: int, height: int, js: bool = True) -> Path:
    """A PNG of the page at ``width`` × ``height`` CSS pixels."""
    proc = _run([f"--screenshot={out}", f"--window-size={width},{height}",
                 "--force-device-scale-factor=1", page.resolve().as_uri()], js=js)
    assert proc.returncode == 0 and out.exists(), proc.stderr[-2000:]
    return out


class Browser:
    """Chromium driven over the DevTools protocol on ``--remote-debugging-pipe`` (fds 3 and 4,
    NUL-separated JSON): a page with JavaScript on or off, its DOM, real mouse clicks."""

    def __init__(self, *, js: bool = True, width: int = 1280, height: int = 900) -> None:
        self._profile = tempfile.TemporaryDirectory(prefix="chromium-")
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def fds() -> None:  # the child's fd 3 reads our commands, fd 4 writes its answers
            r, w = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(r, 3)
            os.dup2(w, 4)

        self._proc = subprocess.Popen(
            [chromium_path(), *CHROMIUM_FLAGS, f"--user-data-dir={self._profile.name}",
             "--remote-debugging-pipe", f"--window-size={width},{height}", "about:blank"],
            preexec_fn=fds, pass_fds=(3, 4), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next = 0
        self._events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self._session = self.call("Target.attachToTarget", targetId=target,
                                  flatten=True)["sessionId"]
        self.call("Page.enable", session=True)
        self.call("DOM.enable", session=True)
        if not js:
            self.call("Emulation.setScriptExecutionDisabled", value=True, session=True)

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("chromium did not answer")
            ready, _, _ = select.select([self._from_chrome], [], [], 1.0)
            if ready:
                chunk = os.read(self._from_chrome, 1 << 16)
                if not chunk:
                    raise RuntimeError("chromium closed its DevTools pipe")
                self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return dict(json.loads(message))

    def call(self, method: str, *, session: bool = False, **params: Any) -> dict[str, Any]:
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params}
        if session:
            message["sessionId"] = self._session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 60
        while True:
            answer = self._read(deadline)
            if answer.get("id") == self._next:
                assert "error" not in answer, answer
                return dict(answer.get("result") or {})
            self._events.append(answer)

    def wait_for(self, event: str) -> None:
        deadline = time.monotonic() + 60
        while True:
            for n, seen in enumerate(self._events):
                if seen.get("method") == event:
                    del self._events[: n + 1]
                    return
            self._events.append(self._read(deadline))

    def open(self, page: Path, fragment: str = "") -> None:
        # From a blank page: a new fragment on the same page would be a same-document navigation,
        # with no load event and no script run.
        for url in ("about:blank", page.resolve().as_uri() + (f"#{fragment}" if fragment else "")):
            self._events.clear()
            self.call("Page.navigate", url=url, session=True)
            self.wait_for("Page.loadEventFired")

    def html(self) -> str:
        root = self.call("DOM.getDocument", depth=-1, session=True)["root"]
        return str(self.call("DOM.getOuterHTML", nodeId=root["nodeId"], session=True)["outerHTML"])

    def click(self, selector: str) -> None:
        """A real left click in the middle of the element (scrolled into view first)."""
        root = self.call("DOM.getDocument", session=True)["root"]
        node = self.call("DOM.querySelector", nodeId=root["nodeId"], selector=selector,
                         session=True)["nodeId"]
        assert node, f"no element matches {selector}"
        self.call("DOM.scrollIntoViewIfNeeded", nodeId=node, session=True)
        quad = self.call("DOM.getContentQuads", nodeId=node, session=True)["quads"][0]
        x, y = sum(quad[0::2]) / 4, sum(quad[1::2]) / 4
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left",
                      clickCount=1, session=True)

    def close(self) -> None:
        with contextlib.suppress(OSError, RuntimeError, TimeoutError):
            self.call("Browser.close")
        try:
            self._proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)
        self._profile.cleanup()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
