"""A local HTTP receiver for alert webhooks: records every POST; can fail or go down on request.

Used by the demo to show what alert receivers get, and by the tests as a real receiver.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# Teams and Slack webhook URLs carry their secret in the path: tests check it never leaks.
DEFAULT_PATH = "/hooks/T0001/B0002/s3cr3t-path-token"


@dataclass(frozen=True)
class Received:
    """One POST as it arrived, and the status the receiver answered."""

    path: str
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON, None when the body was not JSON
    raw: bytes
    status: int


class HttpReceiver:
    """A ThreadingHTTPServer that records POSTs and can fail or go down on request."""

    def __init__(self, status: int = 200, path: str = DEFAULT_PATH) -> None:
        self.status = status
        self.path = path
        self._lock = threading.Lock()
        self._requests: list[Received] = []
        self._failures: list[int] = []
        self._unavailable = False
        self._refusing = False
        self.answer_after = 0.0  # seconds a POST waits for its answer (once recorded)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self._start()

    @property
    def url(self) -> str:
        """The receiver's URL, secret-looking path included."""
        return f"http://127.0.0.1:{self.port}{self.path}"

    @property
    def received(self) -> list[Received]:
        """Every POST so far, failed ones included, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def delivered(self) -> list[Received]:
        """The POSTs answered with 2xx."""
        return [item for item in self.received if 200 <= item.status < 300]

    def fail_next(self, count: int, status: int = 500) -> None:
        """Answer the next `count` POSTs with `status`."""
        with self._lock:
            self._failures.extend([status] * count)

    def set_down(self, down: bool, *, refuse_connections: bool = False) -> None:
        """Go down (503 to everything, or close the listener) or come back on the same port."""
        with self._lock:
            self._unavailable = down and not refuse_connections
            self._refusing = down and refuse_connections
        if self._refusing:
            self._stop_server()
        elif not down and self._server is None:
            self._start(self.port)

    def _answer(self, path: str, headers: dict[str, str], raw: bytes) -> int | None:
        with self._lock:
            if self._refusing:
                return None  # a keep-alive connection opened before going down: drop it
            if self._unavailable:
                status = 503
            elif self._failures:
                status = self._failures.pop(0)
            else:
                status = self.status
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            self._requests.append(Received(path, headers, body, raw, status))
            return status

    def _start(self, port: int = 0) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True  # no 40 ms delayed-ACK stalls
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                headers = {name.lower(): value for name, value in self.headers.items()}
                status = receiver._answer(self.path, headers, raw)
                if status is None:
                    self.close_connection = True
                    return
                if receiver.answer_after > 0:
                    time.sleep(receiver.answer_after)
                reply = b"{}" if 200 <= status < 300 else b'{"error":"simulated"}'
                # A sender that stopped waiting has closed the connection.
                with contextlib.suppress(OSError):
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output quiet

        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        server.daemon_threads = True
        self._server = server
        self.port = int(server.server_address[1])
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def _stop_server(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def stop(self) -> None:
        """Shut the server down."""
        self._stop_server()
