"""Headless Chromium page loads, timed by the browser's own Navigation Timing.

Chromium runs inside a UE namespace (``ip netns exec``) with a fresh profile
(``--user-data-dir`` in a new temporary directory, removed afterwards), so every
load starts with an empty cache, no open connections and no DNS entries. It is
driven over the DevTools protocol (CDP): ``--remote-debugging-port=0`` makes it
write its port to ``DevToolsActivePort`` in the profile; we connect with a
websocket whose TCP socket is created inside the UE namespace (each namespace
has its own loopback, so that is the only place the port exists).

One load (:meth:`Chromium.load`):
1. optionally, a warm-up navigation to ``warmup_url`` (a tiny page on another
   port of the same server: same site, so the renderer process is spawned and
   reused, but a different origin, so no connection is reused);
2. ``Page.navigate(url)``, wait for ``Page.loadEventFired``;
3. read ``performance.getEntriesByType('navigation')[0]`` until ``loadEventEnd``
   is set: page load time = ``loadEventEnd - startTime`` (W3C Navigation
   Timing Level 2), plus the resource entries (objects fetched, bytes).

Flags: ``--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
--disable-background-networking --disable-component-update --disable-sync``,
so the page goes over HTTP/1.1 on TCP and the browser sends nothing else.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from neuralemu.datapath import netns

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--disable-extensions", "--disable-default-apps",
                  "--mute-audio", "--no-default-browser-check", "--password-store=basic",
                  "--disable-features=MediaRouter,OptimizationHints,Translate",
                  "--remote-debugging-port=0", "--remote-allow-origins=*"]

_NAV_JS = ("(() => { const n = performance.getEntriesByType('navigation')[0];"
           " if (!n || !n.loadEventEnd) return null;"
           " const r = performance.getEntriesByType('resource');"
           " return JSON.stringify({nav: n.toJSON(), n_resources: r.length,"
           " first_request: Math.min(...r.map(e => e.requestStart)),"
           " last_response_end: Math.max(...r.map(e => e.responseEnd)),"
           " resource_bytes: r.reduce((s, e) => s + (e.encodedBodySize || 0), 0),"
           " scripts: window.neScripts || 0,"
           " failed: r.filter(e => e.responseStatus && e.responseStatus >= 400).map(e => e.name)}); })()")


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageLoad:
    """One page load as the browser timed it (milliseconds since navigation start)."""

    url: str
    plt_ms: float                 # loadEventEnd - startTime
    dom_content_loaded_ms: float  # domContentLoadedEventEnd
    request_start_ms: float       # the HTML's GET sent
    response_end_ms: float        # the HTML's last byte
    first_subresource_request_ms: float   # first GET of an embedded object
    last_response_end_ms: float   # last byte of any object (the HTML included)
    n_resources: int              # subresources fetched (resource timing entries)
    resource_bytes: int           # their body bytes
    scripts_run: int              # page scripts that executed

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class CdpError(RuntimeError):
    pass


class Chromium:
    """A headless Chromium in namespace ``ns`` with a fresh profile; a context manager."""

    def __init__(self, ns: str | None, *, binary: str | None = None, timeout_s: float = 60.0,
                 extra_flags: list[str] | None = None, nice: int = 0, rt_priority: int = 0) -> None:
        self.ns = ns
        self.nice = int(nice)
        self.rt_priority = int(rt_priority)
        self.binary = binary or chromium_binary()
        if self.binary is None:
            raise CdpError("no chromium binary found (deploy/install-deps.sh installs Debian's chromium)")
        self.timeout_s = timeout_s
        self.extra_flags = list(extra_flags or [])
        self.proc: subprocess.Popen | None = None
        self.profile: str | None = None
        self.ws = None
        self._id = 0
        self._events: list[dict] = []
        self.session: str | None = None

    # -- process ------------------------------------------------------------------
    def start(self) -> "Chromium":
        import websockets.exceptions
        import websockets.sync.client as wsc
        self.profile = tempfile.mkdtemp(prefix="neuralemu-chromium-")
        cmd = [self.binary, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", *self.extra_flags,
               "about:blank"]
        if self.nice:
            cmd = ["nice", "-n", str(self.nice)] + cmd
        if self.rt_priority:
            cmd = ["chrt", "-r", str(self.rt_priority)] + cmd
        if self.ns:
            cmd = ["ip", "netns", "exec", self.ns] + cmd
        try:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
            port_file = Path(self.profile) / "DevToolsActivePort"
            deadline = time.monotonic() + self.timeout_s
            while True:
                if port_file.is_file():
                    lines = port_file.read_text().split()
                    if len(lines) >= 2:
                        break
                if self.proc.poll() is not None:
                    raise CdpError(f"chromium exited with code {self.proc.returncode} at start")
                if time.monotonic() > deadline:
                    raise CdpError("chromium did not open its DevTools port in time")
                time.sleep(0.05)
            port, path = int(lines[0]), lines[1]
            while self.ws is None:    # the port file can come before the endpoint answers
                try:
                    with netns.entered(self.ns):
                        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                    self.ws = wsc.connect(f"ws://127.0.0.1:{port}{path}", sock=sock,
                                          max_size=None, open_timeout=5, legacy=True)
                except (OSError, EOFError, websockets.exceptions.WebSocketException):
                    if time.monotonic() > deadline or self.proc.poll() is not None:
                        raise CdpError("cannot connect to chromium's DevTools endpoint") from None
                    time.sleep(0.1)
            targets = self.call("Target.getTargets")["targetInfos"]
            pages = [t for t in targets if t["type"] == "page"]
            target = pages[0]["targetId"] if pages else self.call(
                "Target.createTarget", url="about:blank")["targetId"]
            self.session = self.call("Target.attachToTarget", targetId=target,
                                     flatten=True)["sessionId"]
            self.call("Page.enable", session=True)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.ws is not None:
            try:
                self.call("Browser.close", timeout_s=3)
            except Exception:
                pass
            try:
                self.ws.close()
            except Exception:
                pass
            self.ws = None
        if self.proc is not None:
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                pass
            if self.proc.poll() is None:
                try:   # the whole session: chromium's zygote, renderer, network service
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait()
            self.proc = None
        if self.profile is not None:
            shutil.rmtree(self.profile, ignore_errors=True)
            self.profile = None

    def __enter__(self) -> "Chromium":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- CDP ------------------------------------------------------------------------
    def call(self, method: str, *, session: bool = False, timeout_s: float | None = None,
             **params) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        self.ws.send(json.dumps(msg))
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CdpError(f"{method}: no answer in time")
            reply = json.loads(self.ws.recv(timeout=left))
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise CdpError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})
            if "method" in reply:
                self._events.append(reply)

    def wait_event(self, method: str, timeout_s: float | None = None) -> dict:
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        while True:
            for i, ev in enumerate(self._events):
                if ev["method"] == method:
                    return self._events.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                raise CdpError(f"no {method} in time")
            reply = json.loads(self.ws.recv(timeout=left))
            if "method" in reply:
                self._events.append(reply)

    def evaluate(self, expr: str):
        res = self.call("Runtime.evaluate", expression=expr, returnByValue=True, session=True)
        if "exceptionDetails" in res:
            raise CdpError(f"script failed: {res['exceptionDetails'].get('text')}")
        return res.get("result", {}).get("value")

    def navigate(self, url: str, timeout_s: float | None = None) -> None:
        self._events.clear()
        res = self.call("Page.navigate", url=url, session=True)
        if res.get("errorText"):
            raise CdpError(f"navigation to {url} failed: {res['errorText']}")
        self.wait_event("Page.loadEventFired", timeout_s)

    # -- a timed load -----------------------------------------------------------------
    def load(self, url: str, *, warmup_url: str | None = None) -> PageLoad:
        """Load ``url`` once and return the browser's timing (see the module docstring)."""
        if warmup_url:
            self.navigate(warmup_url)
        self.navigate(url)
        deadline = time.monotonic() + 10
        while True:
            raw = self.evaluate(_NAV_JS)
            if raw:
                break
            if time.monotonic() > deadline:
                raise CdpError("loadEventEnd never set")
            time.sleep(0.02)
        d = json.loads(raw)
        n = d["nav"]
        if d["failed"]:
            raise CdpError(f"objects failed to load from {url}: {d['failed']}")
        return PageLoad(url=url, plt_ms=n["loadEventEnd"] - n["startTime"],
                        dom_content_loaded_ms=n["domContentLoadedEventEnd"] - n["startTime"],
                        request_start_ms=n["requestStart"] - n["startTime"],
                        response_end_ms=n["responseEnd"] - n["startTime"],
                        first_subresource_request_ms=float(d["first_request"]) - n["startTime"],
                        last_response_end_ms=max(float(d["last_response_end"]),
                                                 n["responseEnd"]) - n["startTime"],
                        n_resources=int(d["n_resources"]), resource_bytes=int(d["resource_bytes"]),
                        scripts_run=int(d["scripts"]))
