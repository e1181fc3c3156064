"""A small threaded HTTP/1.1 server for the test page (one thread per connection).

Run it in the server namespace as its own process, so it never competes with
the live emulation's loop for the interpreter lock::

    ip netns exec P-srv python -m neuralemu.apps.webserver --root DIR --bind 198.19.0.2 --port 8080

It serves the files under ``--root`` with ``Content-Length`` (persistent
connections, as browsers use under HTTP/1.1), ``Cache-Control: no-store``, and
the content type of the page object; it prints ``ready <port>`` on stdout once
it listens. :class:`WebServer` starts and stops that process.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css", ".js": "text/javascript",
         ".png": "image/png"}


def make_handler(root: Path):
    root = root.resolve()
    cache: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "neuralemu-apps/1"

        def do_GET(self) -> None:   # noqa: N802 (http.server's naming)
            path = self.path.split("?", 1)[0]
            if path == "/":
                path = "/index.html"
            body = cache.get(path)
            if body is None:
                f = (root / path.lstrip("/")).resolve()
                if root not in f.parents or not f.is_file():
                    self.send_error(404)
                    return
                body = cache[path] = f.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", TYPES.get(Path(path).suffix, "application/octet-stream"))
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    return Handler


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", required=True)
    ap.add_argument("--bind", default="0.0.0.0")
    ap.add_argument("--port", type=int, default=8080)
    args = ap.parse_args(argv)
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 64
    srv = ThreadingHTTPServer((args.bind, args.port), make_handler(Path(args.root)))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"ready {srv.server_address[1]}", flush=True)
    try:
        srv.serve_forever(poll_interval=0.2)
    finally:
        srv.server_close()
    return 0


class WebServer:
    """The server process in namespace ``ns``: ``with WebServer(ns, root, bind, port): ...``."""

    def __init__(self, ns: str | None, root: str | Path, bind: str, port: int = 8080,
                 nice: int = 0, rt_priority: int = 0) -> None:
        self.ns, self.root, self.bind, self.port = ns, Path(root), bind, int(port)
        self.nice = int(nice)
        self.rt_priority = int(rt_priority)
        self.proc: subprocess.Popen | None = None

    def start(self) -> "WebServer":
        cmd = [sys.executable, "-m", "neuralemu.apps.webserver", "--root", str(self.root),
               "--bind", self.bind, "--port", str(self.port)]
        if self.nice:
            cmd = ["nice", "-n", str(self.nice)] + cmd
        if self.rt_priority:
            cmd = ["chrt", "-r", str(self.rt_priority)] + cmd
        if self.ns:
            cmd = ["ip", "netns", "exec", self.ns] + cmd
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env, start_new_session=True)
        line = self.proc.stdout.readline()
        if not line.startswith("ready"):
            err = self.proc.stderr.read() if self.proc.poll() is not None else ""
            self.stop()
            raise RuntimeError(f"web server did not start: {line.strip()} {err.strip()}")
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            if f:
                f.close()
        self.proc = None

    def __enter__(self) -> "WebServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


if __name__ == "__main__":
    raise SystemExit(main())
