"""The one Table Storage client every state module shares, and its one error translation.

Layout of one org's rows (org key K: the Genesys organization id), by the module that owns them:

| PartitionKey       | RowKey               | module   | what                                   |
|--------------------|----------------------|----------|----------------------------------------|
| K                  | alert-state          | alerts   | AlertState JSON + outbox (zlib JSON)   |
| K                  | roster, roster|0000.. | rosters  | manifest + zlib chunks, one batch      |
| K|samples          | 2026-11-26T12:00:00Z | samples  | one usage sample per check             |
| K|minutes|<period> | 2026-11-26T12:00Z    | billing  | max concurrency of that minute         |
| K|minutes|<period> | histogram            | billing  | level -> minutes of the period         |
| C                  | organization         | organization | pointer: client C's org id (K)     |

C is the region + OAuth client key (Settings.client_key). State is kept under K so that a new
OAuth client of the same org finds it; until a client's org id is known (its first check, or
every check failing before Genesys answered), its rows live under C, and they are moved to K
when the org id is learned (state/organization.py), as are rows written under C by versions
that keyed state by client.

Every read-modify-write is conditional on the ETag read, so racing checks (timer + manual)
cannot both claim a notification nor count a minute twice.
"""

from __future__ import annotations

import copy
import json
import logging
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline import PipelineRequest
from azure.data.tables import TableClient, TableTransactionError, UpdateMode

from license_monitor import deadline
from license_monitor.times import format_time

logger = logging.getLogger(__name__)

# Table Storage limits: 64 KiB per property, 1 MiB per entity, 100 operations and 4 MiB per
# batch. Chunks stay under the property limit.
CHUNK_BYTES = 60_000
WRITE_ATTEMPTS = 25  # ten racing evaluations: the last one loses nine times at most

_FORBIDDEN_KEY_CHARS = set("/\\#?|")
POINTER_ROW = "organization"  # under a client key: which org's key that client's state is under
# A try cut to the time left fails a few milliseconds either side of the deadline.
DEADLINE_SLACK_SECONDS = 0.1


class StorageUnavailable(Exception):  # noqa: N818 - the name other modules already use
    """Table Storage could not be used; the message is one sentence without keys or SAS tokens."""


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(value: Any) -> str:
    """Compact, stable JSON (sorted keys; datetimes as check times)."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=_json_default)


def chunks(data: bytes) -> list[bytes]:
    """`data` cut into pieces under the 64 KiB property limit."""
    return [data[start : start + CHUNK_BYTES] for start in range(0, len(data), CHUNK_BYTES)]


def pack(prefix: str, value: Any) -> dict[str, Any]:
    """Entity properties holding `value` as zlib-compressed JSON split under the 64 KiB limit."""
    parts = chunks(zlib.compress(dumps(value).encode("utf-8"), 6))
    properties: dict[str, Any] = {f"{prefix}{index}": part for index, part in enumerate(parts)}
    properties[f"{prefix}n"] = len(parts)
    return properties


def unpack(entity: Mapping[str, Any], prefix: str) -> Any:
    """Inverse of pack(); None when the entity holds no such value."""
    count = entity.get(f"{prefix}n")
    if count is None:
        return None
    data = b"".join(bytes(entity[f"{prefix}{index}"]) for index in range(int(count)))
    return json.loads(zlib.decompress(data))


def is_conflict(err: HttpResponseError) -> bool:
    """412 (ETag changed), 409 (created meanwhile) or 404 (deleted meanwhile): re-read, retry."""
    return err.status_code in (404, 409, 412)


def guarded(entity: dict[str, Any], etag: str | None) -> tuple[Any, ...]:
    """The batch operation writing `entity` only if unchanged since read (created if new)."""
    if etag is None:
        return ("create", entity)
    return ("update", entity, {"mode": UpdateMode.REPLACE, "etag": etag,
                               "match_condition": MatchConditions.IfNotModified})


def describe(err: AzureError, action: str, where: str) -> str:
    """One sentence about a storage error: never str(err), which may quote URLs with SAS tokens."""
    if isinstance(err, ServiceRequestError):
        return (
            f"Table Storage at {where} could not be reached while {action} "
            f"({type(err).__name__}); check STATE_CONNECTION or STATE_ACCOUNT_URL and the network"
        )
    if isinstance(err, ServiceResponseError):
        return f"Table Storage at {where} did not answer while {action} ({type(err).__name__})"
    if isinstance(err, ClientAuthenticationError) or (
        isinstance(err, HttpResponseError) and err.status_code in (401, 403)
    ):
        return (
            f"Table Storage at {where} rejected the credentials while {action} "
            f"(HTTP {err.status_code}); check the account key or the identity's Table Data role"
        )
    if isinstance(err, HttpResponseError):
        error_code = getattr(err, "error_code", None)
        # The SDK gives a TableErrorCode enum or a plain string.
        code = f" {getattr(error_code, 'value', error_code)}" if error_code else ""
        return f"Table Storage at {where} answered HTTP {err.status_code}{code} while {action}"
    return f"Table Storage at {where} failed while {action} ({type(err).__name__})"


# Every request has a timeout (DESIGN.md §12); azure-core's defaults are 300 s.
CONNECT_TIMEOUT_SECONDS = 5.0
READ_TIMEOUT_SECONDS = 20.0


def _within_deadline(request: PipelineRequest[Any]) -> None:
    """Cut one try's timeouts to the check's time left; refuse a try once it has passed.

    Runs before every try (the SDK's hook policy sits after its retry policy), so the SDK's
    own retries stop at the deadline too. DeadlinePassed is not an AzureError: the retry
    policy lets it through.
    """
    limit = deadline.current()
    if limit is None:
        return
    left = limit.record_left()
    if left <= 0:
        raise limit.passed("Table Storage")
    connect, read = deadline.bounded((CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS), left)
    request.context.options["connection_timeout"] = connect
    request.context.options["read_timeout"] = read


def _client_options(retry_total: int) -> dict[str, Any]:
    return {"retry_total": retry_total, "connection_timeout": CONNECT_TIMEOUT_SECONDS,
            "read_timeout": READ_TIMEOUT_SECONDS, "raw_request_hook": _within_deadline}


def check_key(key: str) -> str:
    """`key` if it can prefix partition keys (ValueError otherwise)."""
    if not key or _FORBIDDEN_KEY_CHARS & set(key) or not key.isprintable():
        raise ValueError(
            f"the org key must be non-empty printable text without / \\ # ? or |: {key!r}"
        )
    return key


class StateTable:
    """One org's rows in one table: the client, the org key and the error translation.

    With `by_client`, `org_key` is the region + OAuth client key: the org's key is read from
    that client's pointer row (state/organization.py) on first use, and the client key itself
    is used only while no pointer exists. A pointer found is remembered for the process; a
    missing one is looked up again on every use, so a worker never keeps writing under the
    client key after another worker has learned the org id.
    """

    def __init__(self, client: TableClient, org_key: str, *, by_client: bool = False) -> None:
        self.client = client
        self.client_key: str | None = check_key(org_key) if by_client else None
        self._key = check_key(org_key)
        self._org: str | None = None if by_client else org_key
        parts = urlsplit(client.url)
        self.where = parts.hostname or "the configured endpoint"
        if parts.port:
            self.where += f":{parts.port}"
        with self.translate("creating the table"), suppress(ResourceExistsError):
            client.create_table()

    @property
    def org(self) -> str:
        """The partition key prefix of this org's rows: its org key once known."""
        if self._org is None:
            self._org = self._pointed_org()
        return self._org or self._key

    @property
    def org_known(self) -> bool:
        """True when the rows are under the org's key (always, without `by_client`)."""
        return self.org != self.client_key

    def locate(self, org_key: str) -> None:
        """Use `org_key` from now on (the org id was just learned, its pointer written)."""
        self._org = check_key(org_key)

    def view(self, key: str) -> StateTable:
        """The same table and client with a fixed key (another key's rows, e.g. to move them)."""
        other = copy.copy(self)
        other.client_key = None
        other._key = other._org = check_key(key)
        return other

    def _pointed_org(self) -> str | None:
        if self.client_key is None:
            return None
        with self.translate("reading the organization pointer"):
            try:
                pointer = self.client.get_entity(self.client_key, POINTER_ROW)
            except ResourceNotFoundError:
                return None
        return check_key(str(pointer["org_key"]))

    @classmethod
    def from_connection_string(
        cls, connection_string: str, table_name: str, org_key: str, *, retry_total: int = 3,
        by_client: bool = False,
    ) -> StateTable:
        """A table from a storage connection string (Azurite locally, a key or SAS in Azure)."""
        try:
            client = TableClient.from_connection_string(
                connection_string, table_name, **_client_options(retry_total)
            )
        except (ValueError, TypeError, AzureError):
            # `from None`: the parser's message may quote the connection string and its key.
            raise StorageUnavailable(
                "the Table Storage connection string is not valid "
                "(expected AccountName=...;AccountKey=...;TableEndpoint=... or similar)"
            ) from None
        return cls(client, org_key, by_client=by_client)

    @classmethod
    def from_account_url(
        cls, url: str, credential: Any, table_name: str, org_key: str, *, retry_total: int = 3,
        by_client: bool = False,
    ) -> StateTable:
        """A table from an endpoint and a credential (managed identity in Azure)."""
        try:
            client = TableClient(
                endpoint=url, table_name=table_name, credential=credential,
                **_client_options(retry_total),
            )
        except (ValueError, TypeError, AzureError):
            raise StorageUnavailable(
                f"the Table Storage account URL for {urlsplit(url).hostname} is not valid"
            ) from None
        return cls(client, org_key, by_client=by_client)

    def partition(self, *parts: str) -> str:
        """The partition key of one kind of row: 'K', 'K|samples', 'K|minutes|2026-11-01'."""
        return "|".join((self.org, *parts))

    @contextmanager
    def translate(self, action: str) -> Iterator[None]:
        """Turn any SDK error into StorageUnavailable with one sentence naming `action`."""
        limit = deadline.current()
        try:
            yield
        except deadline.DeadlinePassed as err:
            message = str(err if limit is None else limit.passed("Table Storage", action))
            raise StorageUnavailable(message) from None
        except AzureError as err:
            message = describe(err, action, self.where)
            if limit is not None and limit.record_left() < DEADLINE_SLACK_SECONDS:
                # The try was cut short by the deadline: that is what ended it.
                message = str(limit.passed("Table Storage", action))
            logger.debug("Storage error (%s) while %s", type(err).__name__, action)
            # `from None` keeps the SDK's message (URLs, maybe a SAS token) out of tracebacks.
            raise StorageUnavailable(message) from None

    def commit_batch(self, operations: list[Any], action: str) -> bool:
        """Submit one atomic batch; False when a row it depends on changed meanwhile."""
        with self.translate(action):
            try:
                self.client.submit_transaction(operations)
            except TableTransactionError as err:
                if is_conflict(err):
                    return False
                raise
        return True

    def service_time(self) -> datetime | None:
        """The storage service's clock (the Date header of one small read), None if absent."""
        dates: list[str] = []

        def keep_date(response: Any) -> None:
            dates.append(str(response.http_response.headers.get("Date") or ""))

        with self.translate("reading the service time"), suppress(ResourceNotFoundError):
            self.client.get_entity(self.org, "alert-state", select=["PartitionKey"],
                                   raw_response_hook=keep_date)
        try:
            return parsedate_to_datetime(dates[-1]).astimezone(UTC) if dates else None
        except (TypeError, ValueError):
            return None

    def kept_changing(self, what: str) -> StorageUnavailable:
        """The error for a row that other checks kept rewriting."""
        return StorageUnavailable(
            f"{what} at {self.where} kept changing under concurrent checks; "
            f"gave up after {WRITE_ATTEMPTS} attempts"
        )
