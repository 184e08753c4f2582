"""GenesysClient: typed calls to Genesys Cloud with timeouts, budget, token renewal and retries."""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Future
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any, NoReturn, TypeVar
from urllib.parse import quote, urlsplit

import requests
from requests.adapters import HTTPAdapter

from license_monitor import deadline
from license_monitor.genesys import auth, payloads
from license_monitor.genesys.budget import RequestBudget
from license_monitor.genesys.errors import (
    AuthError,
    GenesysError,
    PermissionDenied,
    RateLimited,
    Unavailable,
    UnexpectedResponse,
    permission_from_message,
)
from license_monitor.genesys.models import (
    NamedEntity,
    Organization,
    PresenceSegment,
    User,
    UserLicenses,
    normalise_presence,
)
from license_monitor.genesys.retry import RetryPolicy, backoff_seconds, should_retry

logger = logging.getLogger(__name__)

T = TypeVar("T")

CORRELATION_HEADER = "inin-correlation-id"
USER_AGENT = "concurrent-license-monitor/0.1"

# Failures that produced no HTTP response: retried like a 503.
_TRANSPORT_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,  # a body that is not what its encoding says
)


@dataclass(frozen=True, slots=True)
class _Answer:
    """A decoded 2xx JSON body and the correlation id of the response that carried it."""

    body: Any
    correlation_id: str | None
    status: int | None = None


def _retry_after(response: requests.Response) -> float | None:
    """Retry-After in seconds (Genesys sends integer seconds); None when absent or unreadable."""
    raw = response.headers.get("Retry-After")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _error_fields(response: requests.Response) -> tuple[str | None, str | None]:
    """The platform's (code, message) from an ErrorBody, when the body is one."""
    try:
        body = response.json()
    except ValueError:
        return None, None
    if not isinstance(body, dict):
        return None, None
    code = body.get("code")
    message = body.get("message")
    return (
        code if isinstance(code, str) else None,
        message if isinstance(message, str) else None,
    )


class GenesysClient:
    """The Genesys Cloud API calls the monitor needs, on one requests.Session.

    Every request has connect+read timeouts, waits for the request budget, carries the cached
    bearer token (renewed once on a 401), and retries 429/502/503/504 and transport failures
    per the retry policy with the injected sleep. Under a check's deadline (license_monitor.
    deadline) each request's timeouts are cut to the time left, and a request that cannot
    finish in time raises DeadlinePassed instead of retrying.
    """

    def __init__(
        self,
        *,
        api_url: str,
        login_url: str,
        client_id: str,
        client_secret: str,
        timeout: tuple[float, float] = (5.0, 30.0),
        request_budget_per_minute: int = 300,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 - frozen, so sharing it is safe
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        session: requests.Session | None = None,
        budget: RequestBudget | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.login_url = login_url.rstrip("/")
        self.client_id = client_id
        self._client_secret = client_secret
        self._token_key = auth.cache_key(self.login_url, client_id, client_secret)
        self._timeout = timeout
        self._retry = retry
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()  # noqa: S311 - jitter, not crypto
        self._clock = clock
        # A caller may pass one budget shared by several clients of the same OAuth client.
        self._budget = (
            budget
            if budget is not None
            else RequestBudget(request_budget_per_minute, clock=clock, sleep=sleep)
        )
        if session is None:
            session = requests.Session()
            # Enough pooled connections for parallel detail pages without discarding any.
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
        session.headers.setdefault("User-Agent", USER_AGENT)
        self._session = session
        self._count_lock = threading.Lock()
        self._request_count = 0

    @property
    def budget(self) -> RequestBudget:
        """The request budget every call of this client waits for."""
        return self._budget

    def __repr__(self) -> str:
        return f"GenesysClient(api_url={self.api_url!r}, client_id={self.client_id!r})"

    @property
    def request_count(self) -> int:
        """Requests sent by this client so far, token requests and retries included."""
        with self._count_lock:
            return self._request_count

    # --- transport ------------------------------------------------------------------------

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """Send one logical request; retry transient failures; return the final response.

        Raises RateLimited or Unavailable when the retry policy gives up.
        """
        path = urlsplit(url).path
        started = self._clock()
        slept = 0.0
        attempt = 0
        limit = deadline.current()
        while True:
            attempt += 1
            granted = self._budget.acquire()
            timeout = self._timeout
            if limit is not None:
                if limit.work_left() <= 0:
                    self._budget.settle(granted)
                    raise limit.passed("Genesys Cloud")
                timeout = deadline.bounded(timeout, limit.work_left())
            with self._count_lock:
                self._request_count += 1
            failure: Exception | None = None
            response: requests.Response | None = None
            try:
                response = self._session.request(method, url, timeout=timeout, **kwargs)
            except _TRANSPORT_ERRORS as err:
                failure = err
            finally:
                self._budget.settle(granted)
            if response is not None and response.status_code not in (429, 502, 503, 504):
                return response
            status = response.status_code if response is not None else None
            retry_after = _retry_after(response) if response is not None else None
            correlation_id = (
                response.headers.get(CORRELATION_HEADER) if response is not None else None
            )
            what = f"HTTP {status}" if status is not None else _describe_failure(failure)
            wait = None
            if should_retry(status, attempt, self._retry):
                wait = backoff_seconds(attempt, retry_after, self._rng, self._retry, status=status)
                # The cap is on the whole request, answers included, not only on sleeping.
                if max(self._clock() - started, slept) + wait > self._retry.max_total_seconds:
                    wait = None
            if limit is not None and (wait or 0.0) >= limit.work_left():
                # No time for another try: the deadline, not this failure, ends the check.
                logger.warning("Genesys Cloud answered %s to %s %s (attempt %d, correlation id "
                               "%s); no time left for another try", what, method, path, attempt,
                               correlation_id)
                raise limit.passed("Genesys Cloud") from failure
            if wait is None:
                elapsed = max(self._clock() - started, slept)
                self._give_up(
                    what=what,
                    status=status,
                    attempts=attempt,
                    elapsed=elapsed,
                    correlation_id=correlation_id,
                    response=response,
                    failure=failure,
                    method=method,
                    path=path,
                )
            logger.warning(
                "Genesys Cloud answered %s to %s %s (attempt %d of %d, correlation id %s); "
                "retrying in %.1f s",
                what,
                method,
                path,
                attempt,
                self._retry.max_attempts,
                correlation_id,
                wait,
            )
            self._sleep(wait)
            slept += wait

    def _give_up(
        self,
        *,
        what: str,
        status: int | None,
        attempts: int,
        elapsed: float,
        correlation_id: str | None,
        response: requests.Response | None,
        failure: Exception | None,
        method: str,
        path: str,
    ) -> NoReturn:
        """Raise RateLimited (429) or Unavailable (5xx, transport) once retries are exhausted."""
        tries = "attempt" if attempts == 1 else "attempts"
        code = _error_fields(response)[0] if response is not None else None
        if status == 429:
            message = (
                f"Genesys Cloud kept rate-limiting {method} {path} (HTTP 429) "
                f"after {attempts} {tries} over {elapsed:.0f} s"
            )
            raise RateLimited(message, status=status, code=code, correlation_id=correlation_id)
        message = (
            f"Genesys Cloud was unavailable ({what}) for {method} {path} "
            f"after {attempts} {tries} over {elapsed:.0f} s"
        )
        raise Unavailable(
            message, status=status, code=code, correlation_id=correlation_id
        ) from failure

    def _token(self) -> str:
        """This process's bearer token for these credentials, fetched when missing or due."""

        def fetch() -> auth.AccessToken:
            logger.info("requesting a Genesys Cloud access token from %s", self.login_url)
            return auth.request_token(
                self._send,
                login_url=self.login_url,
                client_id=self.client_id,
                client_secret=self._client_secret,
                clock=self._clock,
            )

        return auth.cached_token(self._token_key, fetch, self._clock)

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        object_hook: Callable[[dict[str, Any]], Any] | None = None,
    ) -> _Answer:
        """One API call with bearer auth: renew the token once on 401, map errors, decode JSON.

        `object_hook` is handed to the JSON decoder (to shrink large answers while decoding).
        """
        url = self.api_url + path
        token = self._token()
        response = self._send(method, url, params=params, json=json, headers=_bearer(token))
        if response.status_code == 401:
            # The token expired or was revoked early (e.g. the org's inactivity timeout).
            logger.warning(
                "Genesys Cloud rejected the access token for %s %s (correlation id %s); "
                "renewing it once",
                method,
                path,
                response.headers.get(CORRELATION_HEADER),
            )
            auth.invalidate(token)
            token = self._token()
            response = self._send(method, url, params=params, json=json, headers=_bearer(token))
            if response.status_code == 401:
                code, _ = _error_fields(response)
                raise AuthError(
                    f"Genesys Cloud rejected a freshly issued access token for {method} {path}",
                    status=401,
                    code=code,
                    correlation_id=response.headers.get(CORRELATION_HEADER),
                )
        return self._decode(response, method, path, object_hook)

    @staticmethod
    def _decode(
        response: requests.Response,
        method: str,
        path: str,
        object_hook: Callable[[dict[str, Any]], Any] | None = None,
    ) -> _Answer:
        """The JSON body of a 2xx response, or the matching GenesysError."""
        status = response.status_code
        correlation_id = response.headers.get(CORRELATION_HEADER)
        if status == 204:  # No Content: a DELETE done
            return _Answer(body=None, correlation_id=correlation_id, status=status)
        if 200 <= status < 300:
            try:
                body = response.json(object_hook=object_hook) if object_hook else response.json()
            except (ValueError, ArithmeticError) as err:  # not JSON, or numbers like 1e999
                raise UnexpectedResponse(
                    f"Genesys Cloud answered {method} {path} with a body that is not JSON",
                    status=status,
                    correlation_id=correlation_id,
                ) from err
            return _Answer(body=body, correlation_id=correlation_id, status=status)
        code, platform_message = _error_fields(response)
        if status == 403:
            permission = permission_from_message(platform_message or "")
            missing = (
                f"the OAuth client is missing the permission {permission}"
                if permission
                else "the OAuth client lacks a permission"
            )
            raise PermissionDenied(
                f"Genesys Cloud denied {method} {path}: {missing}",
                status=status,
                code=code,
                correlation_id=correlation_id,
                permission=permission,
            )
        detail = f": {platform_message}" if platform_message else ""
        raise GenesysError(
            f"Genesys Cloud rejected {method} {path}{detail}",
            status=status,
            code=code,
            correlation_id=correlation_id,
        )

    @staticmethod
    def _parse(answer: _Answer, parser: Callable[[Any], T], what: str) -> T:
        """Run a payload parser; a shape error becomes UnexpectedResponse (with correlation id)."""
        try:
            return parser(answer.body)
        except (KeyError, TypeError, ValueError, ArithmeticError) as err:
            raise UnexpectedResponse(
                f"Genesys Cloud answered {what} with an unexpected shape: {err}",
                status=answer.status,
                correlation_id=answer.correlation_id,
            ) from err

    # --- calls ----------------------------------------------------------------------------

    def ensure_token(self) -> None:
        """Obtain (or reuse) the access token now, so bad credentials fail fast with AuthError."""
        self._token()

    def organization(self) -> Organization:
        """The organization this OAuth client belongs to (GET /api/v2/organizations/me).

        The platform asks for no permission here: any client of the org may read it.
        """
        path = "/api/v2/organizations/me"
        return self._parse(self._call("GET", path), payloads.parse_organization, f"GET {path}")

    def sign_out(self, user_id: str) -> None:
        """End every session of a user: DELETE /api/v2/tokens/{userId} (oauth:token:delete).

        The user's presence goes Offline and their concurrent license is freed.
        """
        self._call("DELETE", f"/api/v2/tokens/{_segment(user_id)}")

    def users_logged_in(self, start: datetime, end: datetime) -> frozenset[str]:
        """Users with any non-OFFLINE time in [start, end]: one org-wide aggregates query.

        The answer lists every active user, logged in or not; each result is reduced while it
        is decoded, so memory follows the org's size only as one small row per user.
        """
        if end <= start:
            raise ValueError("the interval end must be after its start")
        path = "/api/v2/analytics/users/aggregates/query"
        (body,) = payloads.aggregates_queries(start, end, None)
        answer = self._call("POST", path, json=body,
                            object_hook=payloads.reduce_aggregate_result)
        return self._parse(answer, payloads.parse_logged_in_users, f"POST {path}")

    def _details_page(
        self,
        start: datetime,
        end: datetime,
        presences: Sequence[str],
        page_size: int,
        page_number: int,
    ) -> payloads.DetailsPage:
        path = "/api/v2/analytics/users/details/query"
        body = payloads.details_query(start, end, presences, page_size, page_number)
        answer = self._call("POST", path, json=body)
        return self._parse(answer, payloads.parse_details_page, f"POST {path}")

    def iter_presence_details(
        self,
        start: datetime,
        end: datetime,
        *,
        presences: Sequence[str] | None = None,
        page_size: int = 100,
        parallel: int = 1,
    ) -> Iterator[PresenceSegment]:
        """Every primaryPresence record of users in `presences` (default: any but OFFLINE).

        Pages as iter_details_pages() does.
        """
        pages = self.iter_details_pages(
            start, end, presences=presences, page_size=page_size, parallel=parallel)
        return (segment for page in pages for segment in page.segments)

    def iter_details_pages(
        self,
        start: datetime,
        end: datetime,
        *,
        presences: Sequence[str] | None = None,
        page_size: int = 100,
        parallel: int = 1,
    ) -> Iterator[payloads.DetailsPage]:
        """Every page of the user details query for users in `presences` (default: any but
        OFFLINE), with their presence and routing status records.

        Pages until an EMPTY page: a short page is not the end (the platform de-duplicates
        rows after paging) and totalHits is approximate. With parallel > 1, the pages that
        totalHits of page 1 announces (and the one after them) are fetched concurrently, then
        paging goes on one by one.
        """
        if end <= start:
            raise ValueError("the interval end must be after its start")
        if not 1 <= page_size <= 100:
            raise ValueError("page_size must be between 1 and 100")
        if parallel < 1:
            raise ValueError("parallel must be at least 1")
        if presences is None:
            wanted: Sequence[str] = payloads.NON_OFFLINE_PRESENCES
        else:
            wanted = list(dict.fromkeys(normalise_presence(p) for p in presences))
            if not wanted:
                raise ValueError("presences must name at least one presence (or be None)")

        # Validated above, eagerly; the paging itself runs lazily as the caller iterates.
        return self._presence_details(start, end, wanted, page_size, parallel)

    def _presence_details(
        self,
        start: datetime,
        end: datetime,
        presences: Sequence[str],
        page_size: int,
        parallel: int,
    ) -> Iterator[payloads.DetailsPage]:
        def fetch(number: int) -> payloads.DetailsPage:
            return self._details_page(start, end, presences, page_size, number)

        path = "POST /api/v2/analytics/users/details/query"
        first = fetch(1)
        if first.rows == 0:
            return
        yield first
        announced = math.ceil(first.total_hits / page_size) if first.total_hits else None
        limit = _page_limit(announced)
        previous = _details_ids(first)
        next_number = 2
        if parallel > 1 and announced:
            # One page past the announced ones rides along: totalHits is approximate, so that
            # page must be read anyway, and asking for it now saves a round trip at the end.
            numbers = range(next_number, announced + 2)
            with closing(_fetch_concurrently(fetch, numbers, parallel)) as pages:
                for number, page in zip(numbers, pages, strict=False):
                    if page.rows == 0:
                        return
                    previous = _check_new_page(path, number, _details_ids(page), previous)
                    yield page
            next_number = announced + 2
        # Past what totalHits announced: one page at a time until an empty one.
        while True:
            _check_page_limit(path, next_number, limit, announced)
            page = fetch(next_number)
            if page.rows == 0:
                return
            previous = _check_new_page(path, next_number, _details_ids(page), previous)
            yield page
            next_number += 1

    def _iter_listing_pages(
        self, path: str, params: dict[str, Any], parallel: int = 1
    ) -> Iterator[tuple[list[dict[str, Any]], _Answer]]:
        """Each page of a paged GET with the answer that carried it, until empty or last page.

        With parallel > 1, the pages that page 1's pageCount announces are fetched
        concurrently (every request still waits for the budget) and yielded in order.
        """
        if parallel < 1:
            raise ValueError("parallel must be at least 1")

        def fetch(number: int) -> tuple[payloads.Listing, _Answer]:
            answer = self._call("GET", path, params={**params, "pageNumber": number})
            return self._parse(answer, payloads.parse_listing, f"GET {path}"), answer

        what = f"GET {path}"
        listing, answer = fetch(1)
        if not listing.entities:
            return
        yield listing.entities, answer
        page_count = announced = listing.page_count
        previous = _entity_ids(listing.entities)
        if page_count is not None and parallel > 1 and page_count > 1:
            numbers = range(2, page_count + 1)
            with closing(_fetch_concurrently(fetch, numbers, parallel)) as pages:
                for number, (listing, answer) in zip(numbers, pages, strict=False):
                    if not listing.entities:
                        return
                    previous = _check_new_page(
                        what, number, _entity_ids(listing.entities), previous)
                    yield listing.entities, answer
            return
        limit = _page_limit(announced)
        page_number = 1
        while page_count is None or page_number < page_count:
            page_number += 1
            # A later page may announce more pages (the org grew), but not without end.
            _check_page_limit(what, page_number, limit, announced)
            listing, answer = fetch(page_number)
            if not listing.entities:
                return
            previous = _check_new_page(what, page_number, _entity_ids(listing.entities), previous)
            yield listing.entities, answer
            page_count = listing.page_count

    def _iter_parsed(
        self,
        path: str,
        params: dict[str, Any],
        parser: Callable[[dict[str, Any]], T],
        parallel: int = 1,
    ) -> Iterator[T]:
        for entities, answer in self._iter_listing_pages(path, params, parallel):
            # Parse a whole page before yielding so a shape error names this page's response.
            yield from self._parse(
                _Answer(entities, answer.correlation_id, answer.status),
                lambda page: [parser(entity) for entity in page],
                f"GET {path}",
            )

    def iter_users(
        self,
        *,
        expand: Sequence[str] = (),
        state: str = "active",
        page_size: int = 500,
        parallel: int = 1,
    ) -> Iterator[User]:
        """Users of the given state; presence, roles and groups when expanded (None if absent)."""
        params: dict[str, Any] = {"pageSize": page_size, "state": state}
        if expand:
            params["expand"] = ",".join(expand)
        wanted = frozenset(expand)
        yield from self._iter_parsed(
            "/api/v2/users", params, lambda entity: payloads.parse_user(entity, wanted), parallel
        )

    def iter_user_licenses(
        self, page_size: int = 500, *, parallel: int = 1
    ) -> Iterator[UserLicenses]:
        """Every user holding a license, with the license ids they hold."""
        yield from self._iter_parsed(
            "/api/v2/license/users", {"pageSize": page_size}, payloads.parse_user_licenses,
            parallel,
        )

    def iter_queues(self, page_size: int = 500, *, parallel: int = 1) -> Iterator[NamedEntity]:
        """Every routing queue, with its memberCount when the platform reports it."""
        yield from self._iter_parsed(
            "/api/v2/routing/queues", {"pageSize": page_size}, payloads.parse_queue, parallel
        )

    def iter_queue_member_ids(
        self, queue_id: str, page_size: int = 100, *, parallel: int = 1
    ) -> Iterator[str]:
        """User ids of a queue's members."""
        path = f"/api/v2/routing/queues/{_segment(queue_id)}/members"
        yield from self._iter_parsed(
            path, {"pageSize": page_size}, payloads.parse_entity_id, parallel
        )

    def iter_groups(self, page_size: int = 100) -> Iterator[NamedEntity]:
        """Every group."""
        yield from self._iter_parsed(
            "/api/v2/groups", {"pageSize": page_size}, payloads.parse_named_entity
        )

    def iter_group_member_ids(self, group_id: str, page_size: int = 100) -> Iterator[str]:
        """User ids of a group's members."""
        path = f"/api/v2/groups/{_segment(group_id)}/members"
        yield from self._iter_parsed(path, {"pageSize": page_size}, payloads.parse_entity_id)

    def iter_roles(self, page_size: int = 100) -> Iterator[NamedEntity]:
        """Every authorization role."""
        yield from self._iter_parsed(
            "/api/v2/authorization/roles", {"pageSize": page_size}, payloads.parse_named_entity
        )

    def iter_role_user_ids(self, role_id: str, page_size: int = 100) -> Iterator[str]:
        """User ids holding a role."""
        path = f"/api/v2/authorization/roles/{_segment(role_id)}/users"
        yield from self._iter_parsed(path, {"pageSize": page_size}, payloads.parse_entity_id)


# Paging stops past the announced page count plus this margin (a quarter more for large
# listings: totalHits is approximate), or at this many pages when nothing was announced.
PAGE_MARGIN = 5
UNANNOUNCED_PAGE_LIMIT = 10_000


def _page_limit(announced: int | None) -> int:
    """The last page number a paging loop may ask for."""
    if announced is None:
        return UNANNOUNCED_PAGE_LIMIT
    return announced + max(PAGE_MARGIN, announced // 4)


def _check_page_limit(what: str, number: int, limit: int, announced: int | None) -> None:
    if number > limit:
        said = "no page count" if announced is None else f"{announced} page(s)"
        raise UnexpectedResponse(
            f"{what} kept answering full pages past page {limit} (page 1 announced {said}); "
            "stopped paging")


def _entity_ids(entities: list[dict[str, Any]]) -> tuple[Any, ...]:
    return tuple(entity.get("id") for entity in entities)


def _details_ids(page: payloads.DetailsPage) -> tuple[Any, ...]:
    return tuple(page.segments)


def _check_new_page(
    what: str, number: int, ids: tuple[Any, ...], previous: tuple[Any, ...]
) -> tuple[Any, ...]:
    """Refuse a page that repeats the previous one (a platform ignoring pageNumber loops)."""
    if ids == previous and any(item is not None for item in ids):
        raise UnexpectedResponse(
            f"{what} answered page {number} with the same entities as page {number - 1}; "
            "stopped paging")
    return ids


def _fetch_concurrently(
    fetch: Callable[[int], T], numbers: range, parallel: int
) -> Generator[T, None, None]:
    """Fetch pages on a thread pool (all under the shared budget); yield them in page order.

    At most 2 x parallel pages are in flight: a page count announced by the platform is not
    trusted with memory or requests (the caller stops at the first empty page, and a wildly
    wrong totalHits must not queue millions of requests).
    """
    executor = deadline.ContextThreadPoolExecutor(max_workers=max(1, min(parallel, len(numbers))))
    window = 2 * max(1, parallel)
    pending: deque[Future[T]] = deque()
    upcoming = iter(numbers)
    try:
        for number in islice(upcoming, window):
            pending.append(executor.submit(fetch, number))
        while pending:
            page = pending.popleft().result()
            for number in islice(upcoming, 1):
                pending.append(executor.submit(fetch, number))
            yield page
    finally:
        # Stop queued pages if the caller stops early or a page failed.
        executor.shutdown(wait=True, cancel_futures=True)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": "application/json"}


def _segment(identifier: str) -> str:
    """An id made safe for one URL path segment."""
    return quote(identifier, safe="")


def _describe_failure(failure: Exception | None) -> str:
    """A short, secret-free name for a transport failure ('timed out', 'connection failed')."""
    if isinstance(failure, requests.Timeout):
        return "timed out"
    if isinstance(failure, requests.exceptions.ChunkedEncodingError):
        return "connection broken mid-response"
    return "connection failed"
