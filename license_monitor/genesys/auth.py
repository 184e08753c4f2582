"""Client-credentials tokens: the token request, its parsing, and a per-process token cache.

The cache is module level on purpose: every activity in a Functions worker process shares one
token per OAuth client, so the token never crosses an activity boundary and is fetched once.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

from license_monitor.genesys.errors import AuthError, UnexpectedResponse

TOKEN_PATH = "/oauth/token"  # noqa: S105 - a URL path, not a secret

# Renew this long before expiry: five minutes, or 10 % of a short lifetime (tokens can be
# configured as short as 5 minutes), so a check never starts with a token about to die.
SAFETY_MARGIN_SECONDS = 300.0
SAFETY_MARGIN_FRACTION = 0.1


@dataclass(frozen=True, slots=True)
class AccessToken:
    """A bearer token and the clock time after which it must be renewed; repr hides the token."""

    value: str = field(repr=False)
    renew_at: float

    def __repr__(self) -> str:
        return f"AccessToken(renew_at={self.renew_at!r})"


CacheKey = tuple[str, str, str]


def cache_key(login_url: str, client_id: str, client_secret: str) -> CacheKey:
    """Key a token by login URL and client id, plus a digest of the secret.

    The digest makes a changed (e.g. wrong or rotated) secret fetch its own token instead of
    silently reusing one issued for the old secret; the secret itself is never stored.
    """
    digest = hashlib.sha256(client_secret.encode("utf-8")).hexdigest()[:16]
    return (login_url.rstrip("/"), client_id, digest)


class TokenCache:
    """Thread-safe token cache with at most one refresh in flight per key."""

    def __init__(self) -> None:
        self._tokens: dict[CacheKey, AccessToken] = {}
        self._key_locks: dict[CacheKey, threading.Lock] = {}
        self._lock = threading.Lock()

    def _key_lock(self, key: CacheKey) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    def get(
        self, key: CacheKey, fetch: Callable[[], AccessToken], clock: Callable[[], float]
    ) -> str:
        """Return the cached token for key, calling fetch (once, whoever asks) when it is due."""
        # Holding the per-key lock across fetch makes concurrent callers wait for one refresh.
        with self._key_lock(key):
            cached = self._tokens.get(key)
            if cached is not None and clock() < cached.renew_at:
                return cached.value
            token = fetch()
            self._tokens[key] = token
            return token.value

    def invalidate(self, token: str) -> None:
        """Forget a token the platform rejected (401); a newer token for the key is kept."""
        with self._lock:
            for key, cached in list(self._tokens.items()):
                if cached.value == token:
                    del self._tokens[key]

    def clear(self) -> None:
        """Forget every token (tests, or after a credentials change)."""
        with self._lock:
            self._tokens.clear()

    def __repr__(self) -> str:
        return f"TokenCache(tokens={len(self._tokens)})"


_TOKEN_TEXT = re.compile(r"[\x21-\x7e]+")
_CACHE = TokenCache()


def cached_token(
    key: CacheKey, fetch: Callable[[], AccessToken], clock: Callable[[], float] = time.monotonic
) -> str:
    """Return this process's token for key, fetching it when missing or due for renewal."""
    return _CACHE.get(key, fetch, clock)


def invalidate(token: str) -> None:
    """Drop a token from the process cache after the platform answered 401 with it."""
    _CACHE.invalidate(token)


def clear_cache() -> None:
    """Drop every cached token of this process."""
    _CACHE.clear()


def login_host(login_url: str) -> str:
    """The host part of the login URL, for messages ('login.mypurecloud.de')."""
    return urlsplit(login_url).netloc or login_url


def renewal_time(issued_at: float, expires_in: float) -> float:
    """Clock time to renew a token issued at issued_at that lives expires_in seconds."""
    margin = min(SAFETY_MARGIN_SECONDS, expires_in * SAFETY_MARGIN_FRACTION)
    return issued_at + expires_in - margin


def parse_token_response(
    *,
    status: int,
    body: Any,
    login_url: str,
    correlation_id: str | None,
    issued_at: float,
) -> AccessToken:
    """Turn the token endpoint's answer into an AccessToken, or raise AuthError/UnexpectedResponse.

    `body` is the decoded JSON, or None when the body was not JSON.
    """
    host = login_host(login_url)
    if status >= 400:
        error = body.get("error") if isinstance(body, dict) else None
        error_code = str(error) if error else None
        if status in (400, 401) and error_code == "invalid_client":
            message = f"Genesys Cloud rejected the client id or secret at {host} (invalid_client)"
        elif status in (400, 401) and error_code is None:
            message = f"Genesys Cloud rejected the client credentials at {host}"
        else:
            detail = f" ({error_code})" if error_code else ""
            message = f"Genesys Cloud refused the token request at {host}{detail}"
        raise AuthError(message, status=status, code=error_code, correlation_id=correlation_id)
    if not isinstance(body, dict):
        raise UnexpectedResponse(
            f"the token endpoint at {host} did not answer with a JSON object",
            status=status,
            correlation_id=correlation_id,
        )
    value = body.get("access_token")
    expires_in = body.get("expires_in")
    # Only visible ASCII can go into an Authorization header; anything else would make
    # requests raise an error quoting the header, token included.
    if not isinstance(value, str) or not _TOKEN_TEXT.fullmatch(value):
        raise UnexpectedResponse(
            f"the token endpoint at {host} answered without a usable access_token",
            status=status,
            correlation_id=correlation_id,
        )
    if (isinstance(expires_in, bool) or not isinstance(expires_in, int | float)
            or not math.isfinite(expires_in) or expires_in <= 0):
        raise UnexpectedResponse(
            f"the token endpoint at {host} answered without a valid expires_in",
            status=status,
            correlation_id=correlation_id,
        )
    return AccessToken(value=value, renew_at=renewal_time(issued_at, float(expires_in)))


def request_token(
    send: Callable[..., requests.Response],
    *,
    login_url: str,
    client_id: str,
    client_secret: str,
    clock: Callable[[], float] = time.monotonic,
) -> AccessToken:
    """POST {login_url}/oauth/token with Basic auth and grant_type=client_credentials.

    `send(method, url, **kwargs)` is the caller's transport (timeouts, budget, retries).
    """
    issued_at = clock()
    response = send(
        "POST",
        login_url.rstrip("/") + TOKEN_PATH,
        auth=(client_id, client_secret),
        data={"grant_type": "client_credentials"},
        headers={"Accept": "application/json"},
    )
    try:
        body = response.json()
    except ValueError:
        body = None
    return parse_token_response(
        status=response.status_code,
        body=body,
        login_url=login_url,
        correlation_id=response.headers.get("inin-correlation-id"),
        issued_at=issued_at,
    )
