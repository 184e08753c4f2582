"""The presence gauge's row formats (the layout: state/gauge.py): which shard and bucket a user
lives in, a bucket's users as zlib JSON, a shard's counter row."""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from azure.data.tables import EdmType, EntityProperty

from license_monitor.gauge import Entry, Role

GAUGE = "gauge"
SHARDS = 4
# Bucket rows per shard, so that a reconciliation is one transaction per shard. A user entry
# is about 60 bytes of JSON, about 30 compressed; a binary property holds 64 KiB: the 128
# buckets hold some 250,000 users.
BUCKETS = 32
COUNTER_ROW = "~count"
BUCKET_PREFIX = "bucket|"
BUCKETS_PER_QUERY = 14  # a filter holds at most 15 comparisons; one is the counter row
ROWS_PER_BATCH = 99  # a transaction holds at most 100 operations; one is the counter
MAX_BUCKET_BYTES = 64_000  # a binary property holds 64 KiB


def shard_of(user_id: str) -> int:
    """The shard of a user: stable across processes and releases."""
    return zlib.crc32(user_id.encode("utf-8")) % SHARDS


def bucket_of(user_id: str) -> int:
    """The bucket of a user within its shard (independent of the shard: the hash's next bits)."""
    return (zlib.crc32(user_id.encode("utf-8")) // SHARDS) % BUCKETS


def bucket_key(bucket: int) -> str:
    return f"{BUCKET_PREFIX}{bucket:03d}"


def int_of(value: Any) -> int:
    return int(value.value if isinstance(value, EntityProperty) else value)


def int64(value: int) -> EntityProperty:
    return EntityProperty(value, EdmType.INT64)


def decode_users(data: bytes) -> dict[str, Entry]:
    users: dict[str, list[int]] = json.loads(zlib.decompress(data)) if data else {}
    return {user_id: Entry(bool(online), int(at), "agent" if agent else "admin")
            for user_id, (online, at, agent) in users.items()}


def encode_users(users: Mapping[str, Entry]) -> bytes:
    text = json.dumps({user_id: [int(entry.online), entry.at_ms, int(entry.role == "agent")]
                       for user_id, entry in sorted(users.items())}, separators=(",", ":"))
    data = zlib.compress(text.encode("utf-8"), 6)
    if len(data) > MAX_BUCKET_BYTES:
        raise ValueError(f"a presence gauge bucket holds {len(users):,} users, over what one "
                         "Table Storage row can store")
    return data


@dataclass
class Bucket:
    users: dict[str, Entry] = field(default_factory=dict)
    etag: str | None = None


@dataclass
class ShardCounter:
    agents: int = 0
    admins: int = 0
    as_of_ms: int = 0
    seen: frozenset[Role] = frozenset()
    etag: str | None = None

    @classmethod
    def from_entity(cls, entity: Mapping[str, Any] | None) -> ShardCounter:
        if entity is None:
            return cls()
        seen: set[Role] = set()
        if entity.get("seen_agents"):
            seen.add("agent")
        if entity.get("seen_admins"):
            seen.add("admin")
        return cls(int_of(entity.get("agents", 0)), int_of(entity.get("admins", 0)),
                   int_of(entity.get("as_of", 0)), frozenset(seen),
                   entity.metadata["etag"])  # type: ignore[attr-defined]
