"""`pushwoosh-fleet delete-user`: GDPR deletions put on the same stream as the user's events.

A deletion is stored like a Segment `delete` event arriving at ingest, on the shard of that
user, so it is sent after every event of the user that is already queued: a profile update
still waiting cannot re-create the profile after it was deleted.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import redis

from config.destinations import Destination
from ingest.errors import IngestError
from ingest.events import format_timestamp
from ingest.publish import Publisher

ROUTE = "cli/delete-user"


class DeletionError(Exception):
    """Raised when the deletions could not be queued (Redis away, backlog full)."""


def read_user_ids(arguments: Iterable[str], path: str | None) -> list[str]:
    """User ids from the arguments and a file (one per line, blank lines skipped), in order,
    each once."""
    ids = [a.strip() for a in arguments]
    if path is not None:
        if path == "-":
            ids += [line.strip() for line in sys.stdin]
        else:
            with open(path, encoding="utf-8") as handle:
                ids += [line.strip() for line in handle]
    return list(dict.fromkeys(i for i in ids if i))


def deletion_event(user_id: str, now: datetime) -> dict[str, Any]:
    stamp = format_timestamp(now)
    return {
        "type": "delete",
        "userId": user_id,
        "messageId": f"delete-{uuid.uuid4()}",
        "timestamp": stamp,
        "receivedAt": stamp,
    }


def delete_users(client: redis.Redis, destination: Destination, user_ids: list[str]) -> int:
    """Queue one deletion per user id; returns how many were queued."""
    now = datetime.now(UTC)
    publisher = Publisher(client, destination.settings, destination.name)
    queued = 0
    # In chunks under ingest's own per-request size, each chunk all or nothing.
    for start in range(0, len(user_ids), 500):
        events = [deletion_event(user_id, now) for user_id in user_ids[start : start + 500]]
        try:
            queued += publisher.publish(events, ROUTE, ROUTE).accepted
        except IngestError as ex:
            raise DeletionError(f"{ex.message} ({queued} of {len(user_ids)} queued)") from ex
        except redis.RedisError as ex:
            raise DeletionError(f"Redis: {ex} ({queued} of {len(user_ids)} queued)") from ex
    return queued
