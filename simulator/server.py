"""A real HTTP server on 127.0.0.1 that answers like Genesys Cloud for the monitor's endpoints."""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import hmac
import json
import logging
import math
import secrets
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from simulator.endpoints import PERMISSIONS, ApiError, ApiRequest, resolve
from simulator.model import SimOrg

logger = logging.getLogger(__name__)

TOKEN_PATH = "/oauth/token"  # noqa: S105 (a path, not a secret)
API_PREFIX = "/api/"
# A benchmark in another process moves the served org's clock here: POST {"now": ISO-8601}.
# Not the platform's: no latency, not recorded, not rate-limited.
CLOCK_PATH = "/_simulator/now"
RATE_WINDOW_SECONDS = 60.0
MAX_REQUEST_BYTES = 512_000  # the platform's request.bytes.max
_MAX_DRAIN_BYTES = 16 * 1024 * 1024
FAULT_KINDS = ("status", "rate_limit", "slow", "malformed", "expired_token", "forbidden",
               "repeat_page", "page_count")
_STATUS_CODES = {
    400: "bad.request",
    401: "bad.credentials",
    403: "missing.permissions",
    404: "not.found",
    408: "request.timeout",
    409: "conflict",
    429: "too.many.requests",
    500: "internal.server.error",
    502: "bad.gateway",
    503: "service.unavailable",
    504: "gateway.timeout",
}


@dataclass
class Fault:
    """A misbehaviour to inject: matching requests get it instead of (or before) the answer."""

    kind: str  # one of FAULT_KINDS
    path: str = ""  # path prefix; "" = every API path ("/oauth/token" must be named)
    times: int | None = 1  # matching requests affected; None = forever
    status: int = 503
    retry_after: float | None = 1  # rate_limit only; None sends 429 without Retry-After
    delay_seconds: float = 0.0
    permission: str = ""
    page_count: int = 1  # page_count only: the pageCount a listing announces instead
    after: int = 0  # matching requests answered normally before the fault begins

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; use one of {FAULT_KINDS}")

    def applies_to(self, path: str) -> bool:
        """True when this fault matches a request for `path`."""
        if not self.path:
            return path.startswith(API_PREFIX)
        return path.startswith(self.path)


@dataclass(frozen=True)
class RecordedRequest:
    """One request the simulator answered (no headers, so no credentials, are kept)."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any | None
    status: int
    at: float = dataclasses.field(default_factory=time.monotonic)  # when it was answered


@dataclass
class _Reply:
    status: int
    body: bytes
    headers: dict[str, str]
    close: bool = False


def _json_reply(status: int, payload: Any, headers: dict[str, str] | None = None) -> _Reply:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return _Reply(status, body, {"Content-Type": "application/json", **(headers or {})})


def error_body(status: int, code: str, message: str, correlation_id: str) -> dict[str, Any]:
    """Return the platform's ErrorBody."""
    return {
        "message": message,
        "code": code,
        "status": status,
        "contextId": correlation_id,
        "details": [],
        "errors": [],
    }


def _format_seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


class GenesysSimulator:
    """A Genesys Cloud look-alike serving an org; a context manager (start() / stop())."""

    def __init__(
        self,
        org: SimOrg,
        *,
        client_id: str = "sim-client-id",
        client_secret: str = "sim-client-secret",  # noqa: S107 (the simulator's own test value)
        token_ttl_seconds: int = 86399,
        rate_limit_per_minute: int | None = 300,
        latency_seconds: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        forbidden: dict[str, str] | None = None,
        revoked: Iterable[str] = (),
        details_duplicates: bool = False,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._org = org
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_ttl_seconds = token_ttl_seconds
        self.rate_limit_per_minute = rate_limit_per_minute
        self.latency_seconds = latency_seconds
        # Like the platform: records spanning midnight are stored twice and de-duplicated after
        # paging, so details pages can be short and totalHits over-counts. Off by default.
        self.details_duplicates = details_duplicates
        self.host = host
        self.port = port
        self.lock = threading.RLock()  # guards the org; hold it for multi-step edits
        self._clock = clock
        self._sleep = sleep
        self._state = threading.Lock()  # guards tokens, faults, windows, records
        self._forbidden: dict[str, str] = dict(forbidden or {})
        # Permissions the OAuth client's role lacks: every endpoint requiring one answers 403.
        self._revoked: set[str] = set(revoked)
        # More OAuth clients of the same org (a rotation keeps the old one valid for a while).
        self._other_clients: dict[str, str] = {}
        self._faults: list[Fault] = []
        self._tokens: dict[str, float] = {}  # token -> expiry on the clock
        self._windows: dict[str, deque[float]] = {}
        self._requests: list[RecordedRequest] = []
        self._tokens_issued = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> GenesysSimulator:
        """Bind the port and serve in a daemon thread."""
        if self._server is not None:
            return self
        self._server = _Server((self.host, self.port), _Handler, self)
        self.port = int(self._server.server_address[1])
        # A short poll interval keeps stop() quick (serve_forever only sees shutdown between polls).
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"genesys-sim-{self.port}", daemon=True,
        )
        self._thread.start()
        logger.info("Genesys simulator listening on %s (%d users)", self.api_url,
                    len(self._org.users))
        return self

    def stop(self) -> None:
        """Stop serving, close the port and every open keep-alive connection."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        logger.info("Genesys simulator on port %d stopped", self.port)

    def __enter__(self) -> GenesysSimulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.api_url if self._server is not None else "stopped"
        return f"GenesysSimulator({where}, users={len(self._org.users)})"

    @property
    def api_url(self) -> str:
        """Base URL of the API host, without a trailing slash."""
        if self._server is None:
            raise RuntimeError("the simulator is not running: call start() first")
        return f"http://{self.host}:{self.port}"

    @property
    def login_url(self) -> str:
        """Base URL of the login host (the same server)."""
        return self.api_url

    @property
    def org(self) -> SimOrg:
        """The served org; edit it under `lock` when a change takes more than one step."""
        return self._org

    @org.setter
    def org(self, value: SimOrg) -> None:
        with self.lock:
            self._org = value

    # ------------------------------------------------------------------ test controls

    def inject(self, fault: Fault) -> None:
        """Queue a fault; faults are consumed in order of injection."""
        with self._state:
            # A copy: the simulator counts `times` down, the caller's object stays as it was.
            self._faults.append(dataclasses.replace(fault))

    def clear_faults(self) -> None:
        """Drop every pending fault."""
        with self._state:
            self._faults.clear()

    def add_client(self, client_id: str, client_secret: str) -> None:
        """Accept another OAuth client of this org, beside `client_id` (as after a rotation)."""
        with self._state:
            self._other_clients[client_id] = client_secret

    def remove_client(self, client_id: str) -> None:
        """Stop accepting a client added with add_client (its tokens stay valid until expiry)."""
        with self._state:
            self._other_clients.pop(client_id, None)

    def _known_client(self, client_id: str, client_secret: str) -> bool:
        with self._state:
            clients = {**self._other_clients, self.client_id: self.client_secret}
        # Every comparison is made, so the answer's timing does not tell which part was wrong.
        matches = [
            hmac.compare_digest(client_id.encode(), known_id.encode())
            & hmac.compare_digest(client_secret.encode(), known_secret.encode())
            for known_id, known_secret in clients.items()
        ]
        return any(matches)

    def forbid(self, path_prefix: str, permission: str) -> None:
        """Answer 403 (naming `permission`) to every request under `path_prefix` from now on."""
        with self._state:
            self._forbidden[path_prefix] = permission

    def revoke(self, permission: str) -> None:
        """Take `permission` from the OAuth client's role: endpoints requiring it answer 403."""
        if permission not in PERMISSIONS:
            raise ValueError(f"no simulated endpoint requires {permission!r}; known: "
                             + ", ".join(sorted(PERMISSIONS)))
        with self._state:
            self._revoked.add(permission)

    def grant(self, permission: str) -> None:
        """Give a revoked permission back."""
        with self._state:
            self._revoked.discard(permission)

    def expire_all_tokens(self) -> None:
        """Invalidate every issued bearer token (the next API call gets 401)."""
        with self._state:
            self._tokens.clear()
            self._windows.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the requests answered so far, oldest first."""
        with self._state:
            return list(self._requests)

    def count(self, path_prefix: str = "", method: str | None = None) -> int:
        """Count recorded requests whose path starts with `path_prefix` (token requests too)."""
        with self._state:
            return sum(
                1 for r in self._requests
                if r.path.startswith(path_prefix) and (method is None or r.method == method)
            )

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        with self._state:
            self._requests.clear()

    @property
    def tokens_issued(self) -> int:
        """How many access tokens the token endpoint has issued."""
        with self._state:
            return self._tokens_issued

    # ------------------------------------------------------------------ request handling

    def handle(self, method: str, target: str, headers: dict[str, str], raw_body: bytes) -> _Reply:
        """Answer one HTTP request (the handler's only call into the simulator)."""
        correlation_id = str(uuid.uuid4())
        split = urlsplit(target)
        path, query = split.path, parse_qs(split.query, keep_blank_values=True)
        if path == CLOCK_PATH and method == "POST":
            return self._set_clock(raw_body)
        if self.latency_seconds > 0:
            self._sleep(self.latency_seconds)
        if path == TOKEN_PATH:
            form = parse_qs(raw_body.decode("utf-8", "replace"))
            recorded_body: Any = {key: values[-1] for key, values in form.items()}
            reply = self._token(method, headers, recorded_body, correlation_id)
        elif path.startswith(API_PREFIX):
            recorded_body, problem = _decode_json(raw_body)
            reply = self._api(method, path, query, headers=headers, body=recorded_body,
                              body_problem=problem, correlation_id=correlation_id)
        else:
            recorded_body, _ = _decode_json(raw_body)
            reply = self._error(404, "not.found", f"No resource at {path}", correlation_id)
        reply.headers["inin-correlation-id"] = correlation_id
        with self._state:
            self._requests.append(RecordedRequest(method, path, query, recorded_body, reply.status))
        return reply

    def _set_clock(self, raw_body: bytes) -> _Reply:
        try:
            moment = datetime.fromisoformat(json.loads(raw_body)["now"])
        except (ValueError, KeyError, TypeError):
            return _json_reply(400, {"error": 'the body must be {"now": "<ISO-8601>"}'})
        if moment.tzinfo is None:
            return _json_reply(400, {"error": "the time needs a time zone"})
        with self.lock:
            self._org.now = moment
        return _json_reply(200, {"now": moment.isoformat()})

    def _error(self, status: int, code: str, message: str, correlation_id: str,
               headers: dict[str, str] | None = None) -> _Reply:
        return _json_reply(status, error_body(status, code, message, correlation_id), headers)

    def _take_fault(self, path: str) -> Fault | None:
        with self._state:
            for index, fault in enumerate(self._faults):
                if fault.applies_to(path):
                    if fault.after > 0:
                        fault.after -= 1
                        return None
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            del self._faults[index]
                    return fault
        return None

    def _fault_reply(self, fault: Fault, path: str, correlation_id: str,
                     bearer: str | None) -> _Reply | None:
        """Return the reply a fault forces, or None to answer normally (after a "slow" delay)."""
        if fault.kind == "slow":
            self._sleep(fault.delay_seconds)
            return None
        if fault.kind == "malformed":
            return _Reply(200, b'{"entities": [{"id": "trunc', {"Content-Type": "application/json"})
        if fault.kind == "rate_limit":
            limit = self.rate_limit_per_minute or 300
            headers = {}
            if fault.retry_after is not None:
                headers["Retry-After"] = _format_seconds(fault.retry_after)
            code = "too.many.requests"
            if fault.retry_after is not None:
                code = "too.many.requests.retry.after"
            message = f"Rate limit exceeded the maximum [{limit}] requests within [60] seconds"
            return self._error(429, code, message, correlation_id, headers)
        if fault.kind == "expired_token":
            if bearer is not None:
                with self._state:
                    # As if it expired: the bearer stays dead, so only a new token works.
                    self._tokens.pop(bearer, None)
            if path == TOKEN_PATH:
                return _json_reply(401, {"error": "invalid_client", "description": "token expired"})
            return self._error(401, "bad.credentials", "Invalid login credentials.", correlation_id)
        if fault.kind == "forbidden":
            found = resolve("POST", path) or resolve("GET", path)
            permission = fault.permission or (
                found[0].permission if found and found[0].permission else "unknown")
            return self._forbidden_reply(permission, correlation_id)
        status = fault.status
        code = _STATUS_CODES.get(status, "error")
        return self._error(status, code, f"The requested operation failed with status {status}",
                           correlation_id)

    def _forbidden_reply(self, permission: str, correlation_id: str) -> _Reply:
        message = (
            "Unable to perform the requested action. You are missing the following "
            f"permission(s): [{permission}]"
        )
        return self._error(403, "missing.permissions", message, correlation_id)

    def _token(self, method: str, headers: dict[str, str], form: dict[str, str],
               correlation_id: str) -> _Reply:
        fault = self._take_fault(TOKEN_PATH)
        if fault is not None:
            reply = self._fault_reply(fault, TOKEN_PATH, correlation_id, None)
            if reply is not None:
                return reply
        if method != "POST":
            return self._error(404, "not.found", f"{method} {TOKEN_PATH} is not supported",
                               correlation_id)
        client_id, client_secret = _basic_credentials(headers.get("authorization", ""))
        if not self._known_client(client_id, client_secret):
            description = "client not found or secret mismatch"
            return _json_reply(401, {"error": "invalid_client", "description": description,
                                     "error_description": description})
        grant = form.get("grant_type")
        if grant != "client_credentials":
            description = f"grant type {grant!r} is not supported; use client_credentials"
            return _json_reply(400, {"error": "unsupported_grant_type",
                                     "description": description,
                                     "error_description": description})
        token = secrets.token_urlsafe(32)
        with self._state:
            self._tokens[token] = self._clock() + self.token_ttl_seconds
            self._tokens_issued += 1
        return _json_reply(200, {"access_token": token, "token_type": "bearer",
                                 "expires_in": self.token_ttl_seconds})

    def _rate_headers(self, bearer: str | None, count_it: bool) -> tuple[dict[str, str], float]:
        """Return the inin-ratelimit-* headers and the wait until the window frees (0 = free)."""
        limit = self.rate_limit_per_minute
        if limit is None:
            return {}, 0.0
        now = self._clock()
        with self._state:
            window = self._windows.setdefault(bearer, deque()) if bearer else deque()
            while window and now - window[0] >= RATE_WINDOW_SECONDS:
                window.popleft()
            wait = 0.0
            if count_it:
                if len(window) >= limit:
                    wait = window[0] + RATE_WINDOW_SECONDS - now
                else:
                    window.append(now)
            reset = window[0] + RATE_WINDOW_SECONDS - now if window else RATE_WINDOW_SECONDS
            headers = {
                "inin-ratelimit-allowed": str(limit),
                "inin-ratelimit-count": str(len(window)),
                "inin-ratelimit-reset": str(max(1, math.ceil(reset))),
            }
        return headers, wait

    def _api(self, method: str, path: str, query: dict[str, list[str]], *,
             headers: dict[str, str], body: Any, body_problem: str | None,
             correlation_id: str) -> _Reply:
        authorization = headers.get("authorization", "")
        bearer = authorization[7:].strip() if authorization.lower().startswith("bearer ") else None
        fault = self._take_fault(path)
        if fault is not None and fault.kind == "repeat_page":
            # Like a cache or proxy that ignores the page asked for: page 1 again, as it is.
            query = {**query, "pageNumber": ["1"]}
            if isinstance(body, dict) and isinstance(body.get("paging"), dict):
                body = {**body, "paging": {**body["paging"], "pageNumber": 1}}
            fault = None
        announce: int | None = None
        if fault is not None and fault.kind == "page_count":
            # A listing whose pageCount is wrong (the org changed while it was paged, or a lie).
            announce, fault = fault.page_count, None
        if fault is not None:
            reply = self._fault_reply(fault, path, correlation_id, bearer)
            if reply is not None:
                reply.headers.update(self._rate_headers(bearer, count_it=False)[0])
                return reply
        if not bearer:
            return self._error(401, "bad.credentials",
                               "No authentication bearer token specified in authorization header.",
                               correlation_id, self._rate_headers(None, count_it=False)[0])
        with self._state:
            expiry = self._tokens.get(bearer)
            if expiry is not None and self._clock() >= expiry:
                del self._tokens[bearer]
                expiry = None
        if expiry is None:
            return self._error(401, "bad.credentials", "Invalid login credentials.",
                               correlation_id, self._rate_headers(None, count_it=False)[0])
        rate_headers, wait = self._rate_headers(bearer, count_it=True)
        if wait > 0:
            retry_after = str(max(1, math.ceil(wait)))
            message = (f"Rate limit exceeded the maximum [{self.rate_limit_per_minute}] requests "
                       f"within [{int(RATE_WINDOW_SECONDS)}] seconds")
            return self._error(429, "too.many.requests.retry.after", message, correlation_id,
                               {**rate_headers, "Retry-After": retry_after})
        found = resolve(method, path)
        if found is None:
            return self._error(404, "not.found", f"No resource for {method} {path}",
                               correlation_id, rate_headers)
        endpoint, params = found
        with self._state:
            permission = next(
                (perm for prefix, perm in self._forbidden.items() if path.startswith(prefix)), None
            )
            if permission is None and endpoint.permission in self._revoked:
                permission = endpoint.permission
        if permission is not None:
            reply = self._forbidden_reply(permission, correlation_id)
            reply.headers.update(rate_headers)
            return reply
        if body_problem is not None:
            return self._error(400, "bad.request",
                               f"The request body is not valid JSON: {body_problem}",
                               correlation_id, rate_headers)
        try:
            with self.lock:
                request = ApiRequest(path, query, body, params, self.details_duplicates)
                payload = endpoint.handler(self._org, request)
        except ApiError as err:
            return self._error(err.status, err.code, err.message, correlation_id, rate_headers)
        except Exception:
            # A simulator bug: answer like the platform would and keep the traceback visible.
            logger.exception("simulator failed on %s %s (correlation id %s)", method, path,
                             correlation_id)
            return self._error(500, "internal.server.error", "The simulator failed",
                               correlation_id, rate_headers)
        if payload is None:
            return _Reply(204, b"", rate_headers)
        if announce is not None and isinstance(payload, dict) and "pageCount" in payload:
            payload["pageCount"] = announce
        return _json_reply(200, payload, rate_headers)


def _decode_json(raw: bytes) -> tuple[Any, str | None]:
    """Return (parsed body, None), or (the raw text, why it is not JSON)."""
    if not raw:
        return None, None
    text = raw.decode("utf-8", "replace")
    try:
        return json.loads(text), None
    except json.JSONDecodeError as err:
        return text, str(err)


def _basic_credentials(header: str) -> tuple[str, str]:
    """Return (client id, secret) from a Basic Authorization header, or ("", "")."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return "", ""
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    client_id, _, secret = decoded.partition(":")
    return client_id, secret


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its simulator and can close open keep-alive connections."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 simulator: GenesysSimulator) -> None:
        self.simulator = simulator
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut down every open client connection so idle keep-alive threads end."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out and hang up mid-answer are expected (slow faults); stay quiet.
        logger.debug("connection from %s ended with an error", client_address)


class _Handler(BaseHTTPRequestHandler):
    """Reads one request, lets the simulator answer it, writes the reply with Content-Length."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        """Keep quiet: the default writes every request to stderr."""

    def _serve(self, method: str) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        simulator = self.server.simulator
        if length < 0 or length > MAX_REQUEST_BYTES:
            # Drain a merely oversized body so the client finishes sending and reads the 413;
            # anything unread would corrupt the keep-alive stream, so hang up afterwards.
            remaining = length if length <= _MAX_DRAIN_BYTES else 0
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 65536))
                if not chunk:
                    break
                remaining -= len(chunk)
            correlation_id = str(uuid.uuid4())
            status = 413 if length > 0 else 400
            message = f"Content-Length must be a number from 0 to {MAX_REQUEST_BYTES}"
            reply = _json_reply(status, error_body(status, "bad.request", message, correlation_id),
                                {"inin-correlation-id": correlation_id})
            reply.close = True
        else:
            raw_body = self.rfile.read(length) if length else b""
            headers = {key.lower(): value for key, value in self.headers.items()}
            reply = simulator.handle(method, self.path, headers, raw_body)
        self.send_response(reply.status)
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(reply.body)))
        if reply.close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(reply.body)
