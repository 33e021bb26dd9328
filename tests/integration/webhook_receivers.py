"""Loopback webhook receivers for tests: verifying with our verifier or the standardwebhooks
package, and misbehaving on request (500, 429 + Retry-After, 410, 302, too slow, down)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Verify = Callable[[bytes, dict[str, str]], dict[str, Any]]
#: Given the request number (0-based), answer (status, extra headers, delay in seconds).
Behaviour = Callable[[int], tuple[int, dict[str, str], float]]


def ok(_n: int) -> tuple[int, dict[str, str], float]:
    return 204, {}, 0.0


@dataclass
class Request:
    at: float
    headers: dict[str, str]
    body: bytes
    verified: dict[str, Any] | None
    error: str | None


@dataclass
class Receiver:
    verify: Verify | None = None
    behaviour: Behaviour = ok
    port: int = 0
    requests: list[Request] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = dict(self.headers.items())
                verified, error = None, None
                if receiver.verify is not None:
                    try:
                        verified = receiver.verify(body, headers)
                    except Exception as exc:
                        error = f"{type(exc).__name__}: {exc}"
                n = len(receiver.requests)
                receiver.requests.append(Request(time.monotonic(), headers, body, verified, error))
                status, extra, delay = (400, {}, 0.0) if error else receiver.behaviour(n)
                if delay:
                    time.sleep(delay)
                try:
                    self.send_response(status)
                    for k, v in extra.items():
                        self.send_header(k, v)
                    self.send_header("content-length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sender gave up (timeout)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @property
    def accepted(self) -> list[Request]:
        return [r for r in self.requests if r.error is None]
